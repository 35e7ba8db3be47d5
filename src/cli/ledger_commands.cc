// The ledger and forensic commands: audit query|trace against the server, and ledger
// export|verify against the server or a local data directory.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/bundle.h"
#include "core/scope.h"
#include "ledger/entry.h"
#include "ledger/verifier.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::cli {
namespace {

using nlohmann::json;

constexpr char kDefaultDataDir[] = "./trustwarden-data";
constexpr uint64_t kPage = 10000;  // entries per export segment fetched from the server

template <typename F>
void OnRun(CLI::App* cmd, Action* action, F body) {
  cmd->callback([action, body] { *action = body; });
}

using StreamSink = std::function<absl::Status(base::ByteView)>;

struct QueryFlags {
  ClientFlags client;
  std::string instance, caller, agent, principal, resource, action, decision, type, since, until;
  int limit = 1000;
  bool json = false;
};

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string TimeOf(const json& event) {
  auto it = event.find("time");
  if (it == event.end() || !it->is_number_integer()) return "-";
  return base::Rfc3339(absl::FromUnixMillis(it->get<int64_t>()));
}

// "1h", "30m": that long ago; an RFC 3339 time or Unix milliseconds as they are.
absl::StatusOr<std::string> TimeParam(const char* flag, const std::string& text) {
  if (text.empty()) return text;
  if (auto ago = core::ParseDuration(text); ago.ok()) {
    return std::to_string(absl::ToUnixMillis(absl::Now() - *ago));
  }
  absl::Time t;
  std::string error;
  if (text.find_first_not_of("0123456789") == std::string::npos ||
      absl::ParseTime(absl::RFC3339_full, text, &t, &error)) {
    return text;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " ", base::Quote(text),
                   ": give an RFC 3339 time, Unix milliseconds, or a duration ago (1h, 30m)"));
}

int AuditQuery(const QueryFlags& f) {
  absl::StatusOr<std::string> since = TimeParam("--since", f.since);
  if (!since.ok()) return Fail(since.status());
  absl::StatusOr<std::string> until = TimeParam("--until", f.until);
  if (!until.ok()) return Fail(until.status());
  const std::string target = Target("/v1/audit/events", {{"limit", std::to_string(f.limit)},
                                                         {"instance", f.instance},
                                                         {"caller", f.caller},
                                                         {"agent", f.agent},
                                                         {"principal", f.principal},
                                                         {"resource", f.resource},
                                                         {"action", f.action},
                                                         {"decision", f.decision},
                                                         {"type", f.type},
                                                         {"since", *since},
                                                         {"until", *until}});
  auto client = Connect(f.client);
  if (!client.ok()) return Fail(client.status());
  auto reply = CallJson(**client, f.client, "GET", target);
  if (!reply.ok()) return Fail(reply.status());
  if (f.json) {
    std::cout << reply->dump(2) << "\n";
    return 0;
  }
  const json& events = (*reply)["events"];
  if (events.empty()) {
    std::cout << "no events match\n";
    return 0;
  }
  auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  std::vector<std::vector<std::string>> rows;
  for (const json& row : events) {
    const json& e = row["event"];
    rows.push_back({std::to_string(row.value("index", uint64_t{0})), TimeOf(e), Str(e, "type"),
                    or_dash(Str(e, "decision")),
                    or_dash(Str(e, "instance").empty() ? Str(e, "principal") : Str(e, "instance")),
                    or_dash(Str(e, "action")), or_dash(Str(e, "resource")),
                    or_dash(Str(e, "reason")), row.value("event_id", "")});
  }
  PrintTable(
      {"INDEX", "TIME", "TYPE", "DECISION", "SUBJECT", "ACTION", "RESOURCE", "REASON", "EVENT"},
      rows);
  return 0;
}

ledger::Hash HashFrom(const std::string& b64) {
  std::string raw;
  ledger::Hash h{};
  if (base::Base64UrlDecode(b64, &raw) && raw.size() == h.size()) {
    std::copy(raw.begin(), raw.end(), h.begin());
  }
  return h;
}

// A signed tree head as GET /v1/ledger/sth gives it and `ledger sth --out` saves it.
absl::StatusOr<ledger::TreeHead> TreeHeadOf(const json& j) {
  ledger::TreeHead head;
  std::string root, signature;
  if (!j.is_object() || !j.contains("tree_size") || !j["tree_size"].is_number_unsigned() ||
      !j.contains("timestamp") || !j["timestamp"].is_number_integer() ||
      !base::Base64UrlDecode(Str(j, "root_hash"), &root) || root.size() != head.root.size() ||
      !base::Base64UrlDecode(Str(j, "signature"), &signature) || signature.empty()) {
    return absl::InvalidArgumentError(
        "not a signed tree head (tree_size, timestamp, root_hash, signature)");
  }
  head.tree_size = j["tree_size"].get<uint64_t>();
  head.timestamp_ms = j["timestamp"].get<int64_t>();
  std::copy(root.begin(), root.end(), head.root.begin());
  head.signature = base::ToBytes(signature);
  return head;
}

// Checks the trace's inclusion proof here, against the ledger key the server publishes,
// rather than trusting the server's own "verified".
absl::Status CheckInclusion(net::HttpsClient& client, const ClientFlags& flags, const json& trace) {
  TW_ASSIGN_OR_RETURN(json key, CallJson(client, flags, "GET", "/v1/ledger/key"));
  TW_ASSIGN_OR_RETURN(crypto::PublicKey pub,
                      crypto::PublicKey::FromPem(Str(key, "public_key_pem")));
  const json& inc = trace.at("inclusion");
  TW_ASSIGN_OR_RETURN(ledger::TreeHead head, TreeHeadOf(inc.at("tree_head")));
  TW_RETURN_IF_ERROR(ledger::VerifyTreeHead(pub, head));
  std::string entry;
  if (!base::Base64UrlDecode(Str(trace, "entry"), &entry)) {
    return absl::InvalidArgumentError("the entry is not base64url");
  }
  std::vector<ledger::Hash> path;
  for (const json& p : inc.at("audit_path")) path.push_back(HashFrom(p.get<std::string>()));
  return ledger::VerifyInclusion(trace.at("index").get<uint64_t>(), head.tree_size,
                                 ledger::LeafHash(base::AsBytes(entry)), path, head.root);
}

}  // namespace

int AuditTrace(const ClientFlags& flags, const std::string& id, bool as_json) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto reply = CallJson(**client, flags, "GET", Target("/v1/audit/trace", {}, id));
  if (!reply.ok()) return Fail(reply.status());
  absl::Status proof = CheckInclusion(**client, flags, *reply);
  if (as_json) {
    (*reply)["inclusion"]["verified_by_client"] = proof.ok();
    std::cout << reply->dump(2) << "\n";
    return proof.ok() ? 0 : 1;
  }
  const json& t = *reply;
  const json& e = t["event"];
  std::cout << "event       " << Str(t, "event_id") << " (ledger index " << t.value("index", 0)
            << ", " << TimeOf(e) << ")\n"
            << "type        " << Str(e, "type") << "\n";
  if (!Str(e, "action").empty()) {
    std::cout << "action      " << Str(e, "action") << " on " << Str(e, "resource") << "\n";
  } else if (!Str(e, "resource").empty()) {
    std::cout << "target      " << Str(e, "resource") << "\n";
  }
  std::cout << "decision    " << (Str(e, "decision").empty() ? "-" : Str(e, "decision"));
  if (!Str(e, "reason").empty()) std::cout << ": " << Str(e, "reason");
  std::cout << "\ninstance    " << (Str(e, "instance").empty() ? "-" : Str(e, "instance"))
            << (Str(e, "serial").empty() ? "" : " (certificate serial " + Str(e, "serial") + ")")
            << "\n";
  const json& chain = t["chain"];
  if (chain.size() == 1) {
    const std::string parent = Str(chain[0], "parent");
    std::cout << "spawned by  "
              << (parent.empty() ? "- (a root instance, created with the principal's token)"
                                 : parent)
              << "\n";
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    std::cout << (i == 1 ? "spawned by  " : "  then by   ") << Str(chain[i], "spiffe_id") << "\n";
  }
  std::cout << "authorized  principal " << Str(t, "principal") << "\n";
  if (t["policy"].is_object()) {
    std::cout << "policy      version " << t["policy"].value("version", 0) << ", sha256 "
              << Str(t["policy"], "sha256") << "\n";
  }
  std::cout << "input       " << (Str(t, "input_digest").empty() ? "-" : Str(t, "input_digest"))
            << "\n";
  if (!Str(t, "payload_digest").empty()) {
    std::cout << "payload     " << Str(t, "payload_digest") << "\n";
  }
  const json& inc = t["inclusion"];
  if (proof.ok()) {
    std::cout << "inclusion   verified: leaf " << t.value("index", 0)
              << " of the signed tree head of size " << inc.value("tree_size", 0) << " (root "
              << Str(inc, "root_hash") << ")\n";
    return 0;
  }
  std::cout << "inclusion   NOT verified: " << proof.message() << "\n";
  return 1;
}

namespace {

struct LedgerFlags {
  ClientFlags client;
  std::string data_dir, export_file, ledger_key, since;
  bool allow_unsigned_tail = false;
  bool json = false;
};

// Where the ledger comes from: a local data directory (given, or the default one when no
// server is named) or the server.
bool UseLocal(const LedgerFlags& f, std::string* dir) {
  if (!f.data_dir.empty()) {
    *dir = f.data_dir;
    return true;
  }
  if (f.client.server.empty() && std::getenv("TRUSTWARDEN_SERVER") == nullptr &&
      ::access(absl::StrCat(kDefaultDataDir, "/trustwarden.db").c_str(), F_OK) == 0) {
    *dir = kDefaultDataDir;
    return true;
  }
  return false;
}

// Streams the ledger as export bytes to `out`: the whole database of a data directory, or
// the server's entries up to `server_end`; reports the entries read to `progress`.
absl::Status ReadLedger(const LedgerFlags& f, const StreamSink& out, Progress& progress,
                        uint64_t server_end = std::numeric_limits<uint64_t>::max()) {
  std::string dir;
  if (UseLocal(f, &dir)) {
    const std::string db = dir + "/trustwarden.db";
    if (::access(db.c_str(), F_OK) != 0) return absl::NotFoundError(db + " does not exist");
    TW_ASSIGN_OR_RETURN(std::string bundle_json, base::ReadFile(dir + "/bundle.json"));
    TW_ASSIGN_OR_RETURN(core::Bundle bundle, core::Bundle::Parse(bundle_json));
    TW_ASSIGN_OR_RETURN(std::string pub_pem, base::ReadFile(dir + "/ledger.pub.pem"));
    TW_ASSIGN_OR_RETURN(crypto::PublicKey pub, crypto::PublicKey::FromPem(pub_pem));
    TW_ASSIGN_OR_RETURN(auto store, store::SqliteStore::Open(db, /*exclusive=*/false));
    ledger::ExportWriter writer(out);
    uint64_t entries = 0, tree_size = 0;
    return store->ExportLedger(
        ledger::ExportHeader{.trust_domain = bundle.trust_domain().name(),
                             .bundle_json = bundle.ToJson(),
                             .ledger_key = pub.spki_der()},
        0, std::numeric_limits<uint64_t>::max(), [&](const ledger::ExportRecord& r) {
          if (const auto* header = std::get_if<ledger::ExportHeader>(&r)) {
            tree_size = header->tree_size;
          }
          if (std::holds_alternative<ledger::EntryRow>(r) && ++entries % 1024 == 0) {
            progress.Update(entries, tree_size);
          }
          return writer.Write(r);
        });
  }
  TW_ASSIGN_OR_RETURN(auto client, Connect(f.client));
  for (uint64_t start = 0;;) {
    const uint64_t end = std::min(start + kPage, server_end);
    TW_ASSIGN_OR_RETURN(
        net::Response response,
        client->Request("GET", absl::StrCat("/v1/ledger/export?start=", start, "&end=", end), "",
                        AuthHeaders(f.client)));
    if (response.status != 200) {
      json err = json::parse(response.body, nullptr, false);
      std::string message = err.is_object() && err.contains("error")
                                ? err["error"].value("message", response.body)
                                : response.body;
      return absl::UnavailableError(absl::StrCat("server: HTTP ", response.status, ": ", message));
    }
    TW_RETURN_IF_ERROR(out(base::AsBytes(response.body)));
    std::istringstream in(response.body);
    ledger::ExportReader reader(in);
    TW_ASSIGN_OR_RETURN(auto first, reader.Next());
    const auto* header = first ? std::get_if<ledger::ExportHeader>(&*first) : nullptr;
    if (header == nullptr) return absl::UnavailableError("server: the export has no header");
    progress.Update(header->end, std::min(header->tree_size, server_end));
    if (header->end >= std::min(header->tree_size, server_end) || header->end == start) {
      return absl::OkStatus();
    }
    start = header->end;
  }
}

int LedgerExport(const LedgerFlags& f, const std::string& file) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) return Fail(absl::PermissionDeniedError("cannot write " + file));
  absl::Status s;
  {
    Progress progress("exporting");
    s = ReadLedger(
        f,
        [&out](base::ByteView b) {
          out.write(reinterpret_cast<const char*>(b.data()),
                    static_cast<std::streamsize>(b.size()));
          return out ? absl::OkStatus() : absl::InternalError("write failed");
        },
        progress);
  }
  out.close();
  if (!s.ok()) return Fail(s);
  Emit(f.json, {{"exported", file}}, absl::StrCat("exported the ledger to ", file));
  return 0;
}

// The server the anchors and heads come from, connected once.
class ServerSource {
 public:
  explicit ServerSource(const ClientFlags& flags) : flags_(flags) {}
  absl::StatusOr<json> Get(const std::string& target) {
    if (client_ == nullptr) {
      auto client = Connect(flags_);
      if (!client.ok()) return client.status();
      client_ = *std::move(client);
    }
    return CallJson(*client_, flags_, "GET", target);
  }

 private:
  const ClientFlags& flags_;
  std::unique_ptr<net::HttpsClient> client_;
};

// The ledger key: --ledger-key (a copy kept outside the ledger), or the server's.
absl::StatusOr<crypto::PublicKey> LedgerKey(const LedgerFlags& f, ServerSource& server) {
  if (!f.ledger_key.empty()) {
    TW_ASSIGN_OR_RETURN(std::string pem, base::ReadFile(f.ledger_key));
    return crypto::PublicKey::FromPem(pem);
  }
  auto reply = server.Get("/v1/ledger/key");
  if (!reply.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ledger key must come from outside the ledger: give --ledger-key FILE or reach the "
        "server (--server, $TRUSTWARDEN_SERVER): ",
        reply.status().message()));
  }
  return crypto::PublicKey::FromPem(Str(*reply, "public_key_pem"));
}

// The trust anchors, from outside what is verified: --ledger-key and --bundle (or
// $TRUSTWARDEN_BUNDLE), or else the server's, over TLS. Never the copies in an export
// header or a data directory.
absl::StatusOr<ledger::VerifyOptions> TrustAnchors(const LedgerFlags& f, ServerSource& server) {
  ledger::VerifyOptions o{.allow_unsigned_tail = f.allow_unsigned_tail};
  TW_ASSIGN_OR_RETURN(crypto::PublicKey key, LedgerKey(f, server));
  o.ledger_key = key.spki_der();
  const char* env = std::getenv("TRUSTWARDEN_BUNDLE");
  if (!f.client.bundle.empty() || (env != nullptr && *env != '\0')) {
    TW_ASSIGN_OR_RETURN(o.bundle, base::ReadFile(f.client.bundle.empty() ? env : f.client.bundle));
  } else {
    // Every authority the server ever published: old entries were signed under ones a
    // rotation has since retired.
    auto reply = server.Get("/v1/ca/history");
    if (!reply.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the bundle must come from outside the ledger: give --bundle FILE or reach the server "
          "(--server, $TRUSTWARDEN_SERVER): ",
          reply.status().message()));
    }
    o.bundle = reply->dump();
  }
  if (!f.since.empty()) {
    TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(f.since));
    auto head = TreeHeadOf(json::parse(text, nullptr, false));
    if (!head.ok())
      return absl::InvalidArgumentError(absl::StrCat(f.since, ": ", head.status().message()));
    o.since = *head;
  }
  return o;
}

int LedgerVerify(const LedgerFlags& f) {
  ServerSource server(f.client);
  auto options = TrustAnchors(f, server);
  if (!options.ok()) return Fail(options.status());
  ledger::VerifyReport report;
  // Drawn only while VerifyExport runs, erased before the result is printed.
  auto verifying = std::make_unique<Progress>("verifying");
  options->progress = [&verifying](uint64_t done, uint64_t total) {
    verifying->Update(done, total);
  };
  if (!f.export_file.empty()) {
    std::ifstream in(f.export_file, std::ios::binary);
    if (!in) return Fail(absl::NotFoundError("cannot read " + f.export_file));
    report = ledger::VerifyExport(in, *std::move(options));
  } else {
    // From the server: up to its latest signed tree head (entries after it are at most one
    // signing interval old, and not yet claimed by anything).
    uint64_t end = std::numeric_limits<uint64_t>::max();
    std::string dir;
    if (!UseLocal(f, &dir)) {
      auto latest = server.Get("/v1/ledger/sth");
      if (!latest.ok()) return Fail(latest.status());
      auto head = TreeHeadOf(*latest);
      if (!head.ok()) return Fail(head.status());
      end = head->tree_size;
    }
    std::string pending;
    absl::Status s;
    {
      Progress fetching("fetching");
      s = ReadLedger(
          f,
          [&](base::ByteView b) {
            pending.append(reinterpret_cast<const char*>(b.data()), b.size());
            return absl::OkStatus();
          },
          fetching, end);
    }
    if (!s.ok()) return Fail(s);
    std::istringstream in(pending);
    report = ledger::VerifyExport(in, *std::move(options));
  }
  verifying.reset();
  if (f.json) {
    PrintJson(json{
        {"intact", report.ok()},
        {"entries", report.entries},
        {"signatures", report.signatures},
        {"tree_heads", report.tree_heads},
        {"since", f.since.empty() ? json(nullptr) : json(f.since)},
        {"first_bad_index", report.first_bad_index ? json(*report.first_bad_index) : json(nullptr)},
        {"error", report.ok() ? json(nullptr) : json(report.error)}});
    return report.ok() ? 0 : 1;
  }
  if (report.ok()) {
    std::cout << "ledger intact: " << report.entries << " entries, " << report.signatures
              << " batch signatures, " << report.tree_heads << " tree heads verified";
    if (!f.since.empty()) std::cout << ", consistent with " << f.since;
    std::cout << "\n";
    return 0;
  }
  if (report.first_bad_index) {
    std::cout << "ledger verify: first bad index " << *report.first_bad_index << ": "
              << report.error << "\n";
  } else {
    std::cout << "ledger verify: " << report.error << "\n";
  }
  return 1;
}

// `ledger sth --out FILE`: the server's latest signed tree head, checked against the ledger
// key, saved for a later `ledger verify --since FILE`.
int LedgerSth(const LedgerFlags& f, const std::string& out) {
  ServerSource server(f.client);
  auto latest = server.Get("/v1/ledger/sth");
  if (!latest.ok()) return Fail(latest.status());
  auto head = TreeHeadOf(*latest);
  if (!head.ok()) return Fail(head.status());
  auto key = LedgerKey(f, server);
  if (!key.ok()) return Fail(key.status());
  if (absl::Status s = ledger::VerifyTreeHead(*key, *head); !s.ok()) {
    return Fail(absl::UnauthenticatedError(
        absl::StrCat("the server's tree head does not verify with the ledger key: ", s.message())));
  }
  const json saved{{"tree_size", head->tree_size},
                   {"timestamp", head->timestamp_ms},
                   {"root_hash", Str(*latest, "root_hash")},
                   {"signature", Str(*latest, "signature")},
                   {"key_id", ledger::LedgerKeyId(*key)}};
  if (absl::Status s = base::WriteFile(out, saved.dump(2) + "\n", 0644); !s.ok()) return Fail(s);
  Emit(f.json,
       {{"tree_size", head->tree_size}, {"root_hash", Str(*latest, "root_hash")}, {"out", out}},
       absl::StrCat("saved the signed tree head of size ", head->tree_size, " (root ",
                    Str(*latest, "root_hash"), ") to ", out));
  return 0;
}

}  // namespace

void RegisterLedgerCommands(CLI::App& app, Action* action) {
  CLI::App* audit =
      app.add_subcommand("audit", "Forensic queries over the ledger (admin, auditor)");
  audit->require_subcommand(1);
  {
    auto f = std::make_shared<QueryFlags>();
    CLI::App* cmd = audit->add_subcommand("query", "Events matching every filter given");
    cmd->add_option("--instance", f->instance, "Instance id or SPIFFE ID");
    cmd->add_option("--caller", f->caller,
                    "Instance id or SPIFFE ID of the agent that asked or was observed");
    cmd->add_option("--agent", f->agent, "Agent name ORG/TEAM/AGENT");
    cmd->add_option("--principal", f->principal, "Authorizing principal");
    cmd->add_option("--resource", f->resource, "Resource");
    cmd->add_option("--action", f->action, "Action (scope)");
    cmd->add_option("--decision", f->decision, "allow or deny")
        ->check(CLI::IsMember({"allow", "deny"}));
    cmd->add_option("--type", f->type, "Event type")
        ->check(CLI::IsMember({"action", "outcome", "observation", "issuance", "renewal",
                               "revocation", "policy", "token", "authority"}));
    cmd->add_option("--since", f->since, "From (RFC 3339, Unix ms, or a duration ago: 1h)");
    cmd->add_option("--until", f->until, "Before (same forms)");
    cmd->add_option("--limit", f->limit, "At most this many events")->check(CLI::Range(1, 10000));
    AddJsonFlag(cmd, &f->json);
    AddClientFlags(cmd, &f->client);
    OnRun(cmd, action, [f] { return AuditQuery(*f); });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    auto id = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    CLI::App* cmd = audit->add_subcommand(
        "trace",
        "Who did it, spawned by whom, authorized by whom, from what input, under "
        "which policy; with its inclusion proof checked");
    cmd->add_option("EVENT_ID", *id, "Event id")->required();
    AddJsonFlag(cmd, as_json.get());
    AddClientFlags(cmd, f.get());
    OnRun(cmd, action, [f, id, as_json] { return AuditTrace(*f, *id, *as_json); });
  }
  CLI::App* ledger = app.add_subcommand("ledger", "Export and verify the audit ledger");
  ledger->require_subcommand(1);
  auto add_source = [](CLI::App* cmd, LedgerFlags* f) {
    cmd->add_option("--data-dir", f->data_dir,
                    "Read the data directory's database instead of asking the server");
    AddClientFlags(cmd, &f->client);
  };
  {
    auto f = std::make_shared<LedgerFlags>();
    CLI::App* cmd = ledger->add_subcommand(
        "verify",
        "Recompute the tree and check every row, signature and tree head; exit 1 "
        "and the first bad index when anything was changed");
    cmd->add_option("--export", f->export_file, "Verify this export file (offline)");
    cmd->add_option("--ledger-key", f->ledger_key,
                    "The ledger's public key (PEM), a copy kept outside the ledger; default: "
                    "the server's");
    cmd->add_option("--since", f->since,
                    "A tree head saved earlier (ledger sth --out): the ledger must hold exactly "
                    "what it signed, and at least as much");
    cmd->add_flag("--allow-unsigned-tail", f->allow_unsigned_tail,
                  "Accept entries after the last signed tree head");
    AddJsonFlag(cmd, &f->json);
    add_source(cmd, f.get());
    OnRun(cmd, action, [f] { return LedgerVerify(*f); });
  }
  {
    auto f = std::make_shared<LedgerFlags>();
    auto out = std::make_shared<std::string>();
    CLI::App* cmd = ledger->add_subcommand(
        "sth", "Save the server's current signed tree head (the auditor's copy, for --since)");
    cmd->add_option("--out", *out, "File to write (JSON)")->required();
    cmd->add_option("--ledger-key", f->ledger_key,
                    "The ledger's public key (PEM) to check the head with; default: the "
                    "server's");
    AddJsonFlag(cmd, &f->json);
    AddClientFlags(cmd, &f->client);
    OnRun(cmd, action, [f, out] { return LedgerSth(*f, *out); });
  }
  {
    auto f = std::make_shared<LedgerFlags>();
    auto file = std::make_shared<std::string>();
    CLI::App* cmd = ledger->add_subcommand("export", "Write the whole ledger to FILE");
    cmd->add_option("FILE", *file, "Output file")->required();
    AddJsonFlag(cmd, &f->json);
    add_source(cmd, f.get());
    OnRun(cmd, action, [f, file] { return LedgerExport(*f, *file); });
  }
}

}  // namespace tw::cli
