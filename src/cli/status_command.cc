// `trustwarden status`: is this machine set up to talk to its server? Each check says ok,
// or what is wrong and the fix to apply.
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "cli/usage.h"
#include "core/bundle.h"

namespace tw::cli {
namespace {

using nlohmann::json;

// How far the local clock may be from the server's: SVIDs are backdated by less.
constexpr absl::Duration kMaxSkew = absl::Seconds(5);

struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
  std::string fix;  // what to do when not ok
};

std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d), " ms"); }

class Doctor {
 public:
  explicit Doctor(ClientFlags flags) : flags_(std::move(flags)) {}

  std::vector<Check> Run() {
    if (!Server()) return checks_;
    Bundle();
    Clock();
    Token();
    if (admin_) {
      Policy();
    } else {
      Add("policy", true, "not checked: reading the policy needs the admin token");
    }
    Revocations();
    if (reader_) {
      Ledger();
    } else {
      Add("ledger", true, "not checked: reading the ledger needs an admin or auditor token");
    }
    return checks_;
  }
  bool unreachable() const { return unreachable_; }

 private:
  void Add(std::string name, bool ok, std::string detail, std::string fix = "") {
    checks_.push_back({std::move(name), ok, std::move(detail), std::move(fix)});
  }

  // The server answers /healthz over TLS verified with the local bundle.
  bool Server() {
    const std::string url =
        FlagOrEnv(flags_.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443");
    absl::StatusOr<std::string> ca = BundlePem(flags_);
    if (!ca.ok()) {
      Add("bundle", false, std::string(ca.status().message()),
          "set TRUSTWARDEN_BUNDLE (or --bundle) to the server's trustwarden-data/bundle.json");
      return false;
    }
    auto client = Connect(flags_, "", "", absl::Seconds(3));
    const absl::Time start = absl::Now();
    absl::StatusOr<net::Response> health =
        client.ok() ? (*client)->Request("GET", "/healthz") : client.status();
    if (!health.ok()) {
      const std::string why(health.status().message());
      if (absl::StrContains(why, "certificate verify failed")) {
        Add("server", true, absl::StrCat(url, " answers TLS"));
        Add("bundle", false, "the server's certificate does not chain to the local bundle",
            "use that server's own bundle (its trustwarden-data/bundle.json)");
      } else {
        unreachable_ = true;
        Add("server", false, absl::StrCat(url, ": ", why),
            "start it (trustwarden server) or point TRUSTWARDEN_SERVER (--server) at it");
      }
      return false;
    }
    Add("server", health->status == 200,
        absl::StrCat(url, " answered /healthz with HTTP ", health->status, " in ",
                     Ms(absl::Now() - start)),
        "read the server's log");
    date_ = health->date;
    client_ = *std::move(client);
    return true;
  }

  // The local bundle holds what the server publishes now.
  void Bundle() {
    absl::StatusOr<json> served =
        CallJson(*client_, ClientFlags{.no_token = true}, "GET", "/v1/bundle");
    absl::StatusOr<std::string> local = BundlePem(flags_);
    if (!served.ok() || !local.ok()) {
      const absl::Status why = served.ok() ? local.status() : served.status();
      Add("bundle", false, std::string(why.message()));
      return;
    }
    absl::StatusOr<core::Bundle> parsed = core::Bundle::Parse(served->dump());
    const bool same = parsed.ok() && parsed->ToPem() == *local;
    Add("bundle", same,
        same ? "the local bundle is the server's" : "the local bundle differs from the server's",
        "fetch it again: trustwarden bundle show > bundle.json (after checking its fingerprint)");
  }

  void Clock() {
    absl::Time server_time;
    std::string err;
    if (date_.empty() || !absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", date_, absl::UTCTimeZone(),
                                          &server_time, &err)) {
      Add("clock", false, "the server sent no usable Date header", "upgrade the server");
      return;
    }
    const absl::Duration skew = absl::Now() - server_time;
    const bool ok = absl::AbsDuration(skew) <= kMaxSkew + absl::Seconds(1);  // Date has seconds
    const absl::Duration seconds = absl::Trunc(skew, absl::Seconds(1));
    Add("clock", ok,
        seconds == absl::ZeroDuration()
            ? std::string("in step with the server's (to the second)")
            : absl::StrCat("local clock ", absl::FormatDuration(absl::AbsDuration(seconds)),
                           seconds > absl::ZeroDuration() ? " ahead of" : " behind",
                           " the server's"),
        "synchronize the clocks (NTP): certificates are backdated only a few seconds");
  }

  // What the token is, and whether the server takes it.
  void Token() {
    const std::string token = FlagOrEnv(flags_.token, "TRUSTWARDEN_TOKEN", "");
    if (token.empty()) {
      Add("token", false, "no token", "set TRUSTWARDEN_TOKEN (or --token)");
      return;
    }
    absl::StatusOr<json> self = CallJson(*client_, flags_, "GET", "/v1/tokens/self");
    if (!self.ok()) {
      Add("token", false, std::string(self.status().message()),
          "get a new token (trustwarden token create), or use DATA_DIR/admin.token");
      return;
    }
    admin_ = self->value("admin", false);
    reader_ = admin_ || self->value("auditor", false);
    const std::string kind = admin_                          ? "admin token"
                             : self->value("auditor", false) ? "auditor token (reads the ledger)"
                                                             : "principal token (creates agents)";
    const std::string expires = Field(*self, "expires_at");
    Add("token", true,
        absl::StrCat(kind, " ", Field(*self, "id"), ", principal ", Field(*self, "principal"),
                     ", expires ", expires == "-" ? "never" : expires));
  }

  void Policy() {
    absl::StatusOr<json> p = CallJson(*client_, flags_, "GET", "/v1/policies/current");
    Add("policy", p.ok(),
        p.ok() ? absl::StrCat("version ", Field(*p, "version"), ", sha256 ", Field(*p, "sha256"),
                              ", applied ", Field(*p, "created_at"))
               : std::string(p.status().message()));
  }

  // The revocation stream is live: its first heartbeat arrives at once.
  void Revocations() {
    absl::StatusOr<json> log =
        CallJson(*client_, ClientFlags{.no_token = true}, "GET", "/v1/revocations?limit=1");
    auto stream = Connect(flags_, "", "", absl::Seconds(3));
    if (!log.ok() || !stream.ok()) {
      const absl::Status why = log.ok() ? stream.status() : log.status();
      Add("revocations", false, std::string(why.message()));
      return;
    }
    const int64_t sequence = log->value("sequence", int64_t{0});
    const absl::Time start = absl::Now();
    bool heard = false;
    absl::Status s = (*stream)->Stream(absl::StrCat("/v1/revocations/stream?after=", sequence), {},
                                       [&](absl::string_view) {
                                         heard = true;
                                         return false;
                                       });
    Add("revocations", heard,
        heard ? absl::StrCat("stream live (first heartbeat in ", Ms(absl::Now() - start),
                             "), log at sequence ", sequence)
              : absl::StrCat("no heartbeat: ", s.message()),
        "check proxies between here and the server (Server-Sent Events must pass unbuffered)");
  }

  void Ledger() {
    absl::StatusOr<json> head = CallJson(*client_, flags_, "GET", "/v1/ledger/sth");
    if (!head.ok()) {
      Add("ledger", false, std::string(head.status().message()));
      return;
    }
    const absl::Time signed_at = absl::FromUnixMillis(head->value("timestamp", int64_t{0}));
    Add("ledger", true,
        absl::StrCat("tree of ", Field(*head, "tree_size"), " entries, head signed ",
                     base::Rfc3339(signed_at)));
  }

  ClientFlags flags_;
  std::unique_ptr<net::HttpsClient> client_;
  std::string date_;
  std::vector<Check> checks_;
  bool unreachable_ = false, admin_ = false, reader_ = false;
};

int Status(const ClientFlags& flags, bool as_json) {
  Doctor doctor(flags);
  const std::vector<Check> checks = doctor.Run();
  bool all_ok = true;
  for (const Check& c : checks) all_ok = all_ok && c.ok;
  if (as_json) {
    json out{{"ok", all_ok}, {"checks", json::array()}};
    for (const Check& c : checks) {
      out["checks"].push_back(json{{"name", c.name},
                                   {"ok", c.ok},
                                   {"detail", c.detail},
                                   {"fix", c.ok ? json(nullptr) : json(c.fix)}});
    }
    PrintJson(out);
  } else {
    const bool colour = UseColour();
    std::vector<std::vector<std::string>> rows;
    for (const Check& c : checks) {
      std::string status = c.ok ? "ok" : "FAIL";
      if (colour) status = absl::StrCat(c.ok ? "\033[32m" : "\033[31m", status, "\033[0m");
      rows.push_back({c.name, status,
                      c.ok || c.fix.empty() ? c.detail : absl::StrCat(c.detail, "; fix: ", c.fix)});
    }
    PrintTable({"CHECK", "STATUS", "DETAIL"}, rows);
  }
  if (all_ok) return kExitOk;
  return doctor.unreachable() ? kExitUnreachable : kExitRefused;
}

}  // namespace

void RegisterStatusCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ClientFlags>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "status",
      "Check the set-up: server, bundle, clock, token, policy, revocation stream, ledger");
  AddJsonFlag(cmd, as_json.get());
  AddClientFlags(cmd, flags.get());
  cmd->callback([action, flags, as_json] {
    *action = [flags, as_json] { return Status(*flags, *as_json); };
  });
}

}  // namespace tw::cli
