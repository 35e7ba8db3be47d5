// Big-endian integers and length-prefixed vectors (RFC 8446 §3 presentation language) for
// the ledger's binary formats. Values without shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/bytes.h"

namespace tw::ledger {

class WireWriter {
 public:
  void U8(uint8_t v) { out_.push_back(v); }
  void U16(uint16_t v) { Uint(v, 2); }
  void U32(uint32_t v) { Uint(v, 4); }
  void U64(uint64_t v) { Uint(v, 8); }
  void Raw(base::ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
  // A vector with a `prefix`-byte length (1, 2 or 3); the caller keeps it in range.
  void Vec(base::ByteView b, int prefix) {
    Uint(b.size(), prefix);
    Raw(b);
  }
  base::Bytes& bytes() { return out_; }

 private:
  void Uint(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  base::Bytes out_;
};

// Reads from a borrowed buffer; every read fails (returns false) once out of bytes.
class WireReader {
 public:
  explicit WireReader(base::ByteView in) : in_(in) {}
  bool Uint(int n, uint64_t* v) {
    if (in_.size() - pos_ < static_cast<size_t>(n)) return false;
    uint64_t r = 0;
    for (int i = 0; i < n; ++i) r = (r << 8) | in_[pos_++];
    *v = r;
    return true;
  }
  bool Raw(size_t n, base::ByteView* out) {
    if (in_.size() - pos_ < n) return false;
    *out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool Vec(int prefix, base::ByteView* out) {
    uint64_t n = 0;
    return Uint(prefix, &n) && Raw(n, out);
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  base::ByteView in_;
  size_t pos_ = 0;
};

}  // namespace tw::ledger
