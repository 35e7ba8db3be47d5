#!/usr/bin/env python3
"""Prints the issuance load benchmark: saturated, then open loop at a third of that rate."""
import json
import sys

saturated, open_loop = (json.load(open(p)) for p in sys.argv[1:3])
s, o = saturated, open_loop
floor = s["floor_per_core_per_s"] * s["cores"]
print(f"== issuance over HTTPS, saturated (64 keep-alive connections; server and load generator"
      f" share the {s['cores']} cores)")
print(f"throughput {s['throughput_per_s']:,.0f}/s  p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms"
      f"  p999 {s['p999_ms']:.2f} ms  ({s['vs_floor_all_cores']:.0%} of one ECDSA sign + verify"
      f" per request on every core, {floor:,.0f}/s; {s['errors']} errors)")
print(f"== open loop at a third of that, {o['target_rate']:,.0f}/s (latency from the scheduled"
      f" send time)")
print(f"throughput {o['throughput_per_s']:,.0f}/s  p50 {o['p50_ms']:.2f} ms  p99 {o['p99_ms']:.2f} ms"
      f"  p999 {o['p999_ms']:.2f} ms  max {o['max_ms']:.2f} ms  (target p99 <= 10 ms;"
      f" {o['errors']} errors)")
