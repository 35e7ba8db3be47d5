// The API clients: agent create|list|show, revoke, token create|list|revoke,
// policy apply|show|history,
// bundle show.
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/agent_name.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/x509_issuer.h"
#include "crypto/digest.h"
#include "crypto/software_signer.h"
#include "policy/policy.h"

namespace tw::cli {
namespace {

using nlohmann::json;

struct AgentCreateFlags {
  ClientFlags client;
  std::string name, org, team, ttl, trust_level, parent_dir, out;
  std::vector<std::string> scopes;
  bool json = false;
};

// The name the server is asked for: a bare agent name goes under the parent's org and team
// (its SVID in `parent_chain_pem`, when delegating), or else --org/--team.
std::string RequestedName(const AgentCreateFlags& f, const std::string& parent_chain_pem) {
  if (!parent_chain_pem.empty()) {
    auto chain = core::Certificate::ParseChain(parent_chain_pem);
    if (chain.ok() && !chain->empty() && (*chain)[0].uri_sans().size() == 1) {
      auto id = core::SpiffeId::FromString((*chain)[0].uri_sans()[0]);
      auto parent = id.ok() ? core::ParseAgentSpiffeId(*id) : id.status();
      if (parent.ok()) return core::QualifyAgentName(f.name, parent->name.org, parent->name.team);
    }
  }
  return core::QualifyAgentName(f.name, FlagOrEnv(f.org, "TRUSTWARDEN_ORG", core::kDefaultOrg),
                                FlagOrEnv(f.team, "TRUSTWARDEN_TEAM", core::kDefaultTeam));
}

absl::Status AgentCreate(const AgentCreateFlags& f) {
  const std::string key_path = f.out + "/key.pem";
  if (base::ReadFile(key_path).ok()) {
    return absl::AlreadyExistsError(absl::StrCat(key_path, " exists; choose another --out"));
  }
  // The key is made here and never leaves this machine; the server sees only the CSR.
  TW_ASSIGN_OR_RETURN(auto key, crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
  TW_ASSIGN_OR_RETURN(base::Bytes csr, core::BuildCertificateRequest(*key));
  std::string chain_pem, parent_key_pem;
  ClientFlags client_flags = f.client;
  if (!f.parent_dir.empty()) {
    // Delegation authenticates with the parent's SVID (mTLS) and no token.
    TW_ASSIGN_OR_RETURN(chain_pem, base::ReadFile(f.parent_dir + "/svid.pem"));
    TW_ASSIGN_OR_RETURN(parent_key_pem, base::ReadFile(f.parent_dir + "/key.pem"));
    client_flags.no_token = true;
    if (client_flags.bundle.empty()) client_flags.bundle = f.parent_dir + "/bundle.json";
  }
  json body{{"name", RequestedName(f, chain_pem)},
            {"scope", f.scopes},
            {"csr", core::PemEncode("CERTIFICATE REQUEST", csr)}};
  if (!f.ttl.empty()) body["ttl"] = f.ttl;
  if (!f.trust_level.empty()) body["trust_level"] = f.trust_level;
  TW_ASSIGN_OR_RETURN(auto client, Connect(client_flags, chain_pem, parent_key_pem));
  TW_ASSIGN_OR_RETURN(json reply, CallJson(*client, client_flags, "POST", "/v1/identities", &body));
  if (!reply.contains("svid_pem") || !reply.contains("bundle") || !reply.contains("spiffe_id")) {
    return absl::UnavailableError("server: the reply lacks svid_pem, bundle or spiffe_id");
  }
  const std::string bundle_json = reply["bundle"].dump();
  TW_ASSIGN_OR_RETURN(core::Bundle bundle, core::Bundle::Parse(bundle_json));
  TW_RETURN_IF_ERROR(base::MakeDirectory(f.out, 0700));
  TW_RETURN_IF_ERROR(key->WriteFile(key_path));
  TW_RETURN_IF_ERROR(base::WriteFile(f.out + "/svid.pem", reply["svid_pem"].get<std::string>()));
  TW_RETURN_IF_ERROR(base::WriteFile(f.out + "/bundle.json", bundle_json));
  TW_RETURN_IF_ERROR(base::WriteFile(f.out + "/bundle.pem", bundle.ToPem()));
  if (f.json) {
    PrintJson(json{{"spiffe_id", reply["spiffe_id"]},
                   {"instance_id", reply.value("instance_id", "")},
                   {"expires_at", reply.value("expires_at", "")},
                   {"directory", f.out},
                   {"files", {"key.pem", "svid.pem", "bundle.json", "bundle.pem"}}});
    return absl::OkStatus();
  }
  std::cout << reply["spiffe_id"].get<std::string>() << "\n"
            << "instance " << reply.value("instance_id", "") << ", expires "
            << reply.value("expires_at", "") << ", files in " << f.out << "\n";
  return absl::OkStatus();
}

// The print function of a command with --json: the reply itself, or `human`'s lines.
std::function<void(const json&)> JsonOr(std::shared_ptr<bool> as_json,
                                        std::function<void(const json&)> human) {
  return [as_json, human = std::move(human)](const json& reply) {
    if (*as_json) return PrintJson(reply);
    human(reply);
  };
}

// A policy file, parsed as the server would, and the SHA-256 of its canonical JSON.
struct LocalPolicy {
  policy::Policy policy;
  std::string sha256_hex;
};
absl::StatusOr<LocalPolicy> ReadPolicy(const std::string& path) {
  TW_ASSIGN_OR_RETURN(std::string source, base::ReadFile(path));
  absl::StatusOr<policy::Policy> parsed = policy::Policy::Parse(source);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  const std::string sha = base::HexEncode(crypto::Sha256(base::AsBytes(parsed->CanonicalJson())));
  return LocalPolicy{*std::move(parsed), sha};
}

// What applying `path` would change against the server's current version: its JSON Patch
// (RFC 6902) from the current policy to the file's, with both versions' facts.
absl::StatusOr<json> PolicyDiff(const ClientFlags& flags, const std::string& path) {
  TW_ASSIGN_OR_RETURN(LocalPolicy local, ReadPolicy(path));
  TW_ASSIGN_OR_RETURN(auto client, Connect(flags));
  TW_ASSIGN_OR_RETURN(json current, CallJson(*client, flags, "GET", "/v1/policies/current"));
  const json changes = json::diff(current.value("policy", json::object()), local.policy.json());
  return json{{"current_version", current.value("version", int64_t{0})},
              {"current_sha256", current.value("sha256", "")},
              {"file_sha256", local.sha256_hex},
              {"unchanged", changes.empty()},
              {"changes", changes}};
}

void PrintPolicyDiff(const json& diff) {
  if (diff.value("unchanged", false)) {
    std::cout << "no change: identical to policy version " << Field(diff, "current_version")
              << " (sha256 " << Field(diff, "current_sha256") << ")\n";
    return;
  }
  std::cout << "against policy version " << Field(diff, "current_version")
            << (diff.value("dry_run", false) ? " (dry run: nothing applied)" : "") << ":\n";
  for (const json& op : diff["changes"]) {
    const std::string kind = Field(op, "op"), at = Field(op, "path");
    if (kind == "add") std::cout << "+ " << at << " = " << op["value"].dump() << "\n";
    if (kind == "remove") std::cout << "- " << at << "\n";
    if (kind == "replace") std::cout << "~ " << at << " = " << op["value"].dump() << "\n";
  }
}

// `agent show`: the identity record of an instance id or SPIFFE ID, with its revocation
// (when, why, by whom, as what: itself or the ancestor it was cascaded from) when revoked.
absl::Status AgentShow(const ClientFlags& flags, const std::string& who,
                       const std::function<void(const json&)>& print) {
  std::string instance = who;
  if (absl::StartsWith(who, "spiffe://")) {
    TW_ASSIGN_OR_RETURN(const core::SpiffeId id, core::SpiffeId::FromString(who));
    TW_ASSIGN_OR_RETURN(const core::AgentInstance parsed, core::ParseAgentSpiffeId(id));
    instance = parsed.instance_id;
  }
  TW_ASSIGN_OR_RETURN(auto client, Connect(flags));
  TW_ASSIGN_OR_RETURN(json record,
                      CallJson(*client, flags, "GET", Target("/v1/identities", {}, instance)));
  print(record);
  return absl::OkStatus();
}

// An identity record (GET /v1/identities/{id}) as "key: value" lines.
void PrintIdentity(const json& r) {
  std::vector<std::vector<std::string>> rows;
  for (const char* key : {"instance_id", "spiffe_id", "name", "parent", "principal",
                          "policy_version", "serial", "scope", "trust_level", "not_before",
                          "not_after", "created_at", "revoked", "revoked_sequence"}) {
    std::string value = Field(r, key);
    if (r.contains(key) && r[key].is_array()) {
      value = absl::StrJoin(r[key].get<std::vector<std::string>>(), " ");
    }
    rows.push_back({absl::StrCat(key, ":"), value});
  }
  if (r.contains("revocation")) {
    const json& v = r["revocation"];
    rows.push_back({"revoked_at:", Field(v, "revoked_at")});
    rows.push_back({"revoked_because:", Field(v, "reason")});
    rows.push_back({"revoked_as:", absl::StrCat(Field(v, "kind"), " ", Field(v, "target"))});
    rows.push_back({"revoked_by:", Field(v, "revoked_by")});
    if (v.contains("cascaded_from") && !v["cascaded_from"].is_null()) {
      rows.push_back({"cascaded_from:", Field(v, "cascaded_from")});
    }
  }
  PrintTable({"FIELD", "VALUE"}, rows);
}

// Runs `body` as the action of `cmd`, printing its error.
template <typename F>
void OnRun(CLI::App* cmd, Action* action, F body) {
  cmd->callback([action, body] {
    *action = [body] {
      absl::Status s = body();
      return s.ok() ? 0 : Fail(s);
    };
  });
}

absl::Status Simple(const ClientFlags& flags, absl::string_view method, const std::string& target,
                    const json* body, const std::function<void(const json&)>& print) {
  TW_ASSIGN_OR_RETURN(auto client, Connect(flags));
  TW_ASSIGN_OR_RETURN(json reply, CallJson(*client, flags, method, target, body));
  print(reply);
  return absl::OkStatus();
}

}  // namespace

void RegisterClientCommands(CLI::App& app, Action* action) {
  CLI::App* agent = app.add_subcommand("agent", "Create, list and show agent identities");
  agent->require_subcommand(1);
  {
    auto f = std::make_shared<AgentCreateFlags>();
    CLI::App* cmd = agent->add_subcommand("create", "Create an agent instance's identity");
    cmd->add_option("--name", f->name,
                    "ORG/TEAM/AGENT, or a bare AGENT under --org/--team (a child: its parent's)")
        ->required();
    cmd->add_option("--org", f->org, "Org of a bare name (default $TRUSTWARDEN_ORG or default)");
    cmd->add_option("--team", f->team,
                    "Team of a bare name (default $TRUSTWARDEN_TEAM or default)");
    cmd->add_option("--scope", f->scopes, "A scope, action:object (repeatable)");
    cmd->add_option("--ttl", f->ttl, "Lifetime, e.g. 30m (default: policy's, at most 1h)");
    cmd->add_option("--trust-level", f->trust_level, "low|medium|high|critical (default low)");
    cmd->add_option("--parent-dir", f->parent_dir,
                    "Create a child of the agent in DIR (delegation over mTLS)");
    cmd->add_option("--out", f->out, "Directory for key.pem, svid.pem, bundle.json/pem")
        ->required();
    AddJsonFlag(cmd, &f->json);
    AddClientFlags(cmd, &f->client);
    OnRun(cmd, action, [f] { return AgentCreate(*f); });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    auto as_json = std::make_shared<bool>(false);
    auto filter = std::make_shared<std::vector<std::string>>(3);
    CLI::App* cmd = agent->add_subcommand("list", "List agent instances (admin)");
    AddJsonFlag(cmd, as_json.get());
    cmd->add_option("--agent", (*filter)[0], "Only instances of ORG/TEAM/AGENT");
    cmd->add_option("--principal", (*filter)[1], "Only instances created by PRINCIPAL");
    cmd->add_flag(
        "--live", [filter](int64_t) { (*filter)[2] = "true"; },
        "Only unrevoked, unexpired instances");
    AddClientFlags(cmd, f.get());
    OnRun(cmd, action, [f, as_json, filter] {
      const std::string target =
          Target("/v1/identities",
                 {{"agent", (*filter)[0]}, {"principal", (*filter)[1]}, {"live", (*filter)[2]}});
      return Simple(*f, "GET", target, nullptr, JsonOr(as_json, [](const json& reply) {
        std::vector<std::vector<std::string>> rows;
        for (const json& r : reply.value("identities", json::array())) {
          rows.push_back({Field(r, "instance_id"), Field(r, "spiffe_id"), Field(r, "not_after"),
                          r.value("revoked", false) ? "revoked" : "live"});
        }
        PrintTable({"INSTANCE", "SPIFFE ID", "EXPIRES", "STATUS"}, rows);
      }));
    });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    auto instance = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    CLI::App* cmd =
        agent->add_subcommand("show", "Show one agent instance and its revocation, if any (admin)");
    cmd->add_option("instance", *instance, "Instance id (inst-...) or its SPIFFE ID")->required();
    AddJsonFlag(cmd, as_json.get());
    AddClientFlags(cmd, f.get());
    OnRun(cmd, action, [f, instance, as_json] {
      return AgentShow(*f, *instance, JsonOr(as_json, PrintIdentity));
    });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    auto target = std::make_shared<std::vector<std::string>>(5);
    auto as_json = std::make_shared<bool>(false);
    CLI::App* cmd = app.add_subcommand("revoke", "Revoke instances everywhere (admin)");
    auto* g = cmd->add_option_group("target", "What to revoke");
    g->add_option("--instance", (*target)[0],
                  "An instance (its descendants go with it; the log names the instance)");
    g->add_option("--agent", (*target)[1], "Every live instance of ORG/TEAM/AGENT");
    g->add_option("--subtree", (*target)[2],
                  "An instance and every descendant (the same reach, named a subtree in the log)");
    g->add_option("--principal", (*target)[3], "Everything a principal created");
    g->require_option(1);
    cmd->add_option("--reason", (*target)[4], "Why (recorded in the revocation log)");
    AddJsonFlag(cmd, as_json.get());
    AddClientFlags(cmd, f.get());
    OnRun(cmd, action, [f, target, as_json] {
      static const char* kKinds[] = {"instance", "agent", "subtree", "principal"};
      json body = json::object();
      for (int i = 0; i < 4; ++i) {
        if (!(*target)[i].empty()) body[kKinds[i]] = (*target)[i];
      }
      if (!(*target)[4].empty()) body["reason"] = (*target)[4];
      return Simple(*f, "POST", "/v1/revocations", &body, JsonOr(as_json, [](const json& reply) {
        std::vector<std::string> ids = reply.value("revoked", std::vector<std::string>{});
        std::cout << "revoked " << ids.size() << " instance(s) as revocation "
                  << reply.value("sequence", int64_t{0}) << ": " << absl::StrJoin(ids, " ") << "\n";
      }));
    });
  }
  {
    CLI::App* token = app.add_subcommand("token", "Principal tokens (admin)");
    token->require_subcommand(1);
    {
      auto f = std::make_shared<ClientFlags>();
      auto principal = std::make_shared<std::string>();
      auto ttl = std::make_shared<std::string>();
      auto auditor = std::make_shared<bool>(false);
      auto as_json = std::make_shared<bool>(false);
      auto force = std::make_shared<bool>(false);
      CLI::App* cmd = token->add_subcommand("create", "Create a principal's token (shown once)");
      cmd->add_option("--principal", *principal, "Principal name")->required();
      cmd->add_flag("--auditor", *auditor,
                    "A read-only token: the ledger and audit queries, nothing else");
      cmd->add_option("--ttl", *ttl, "Lifetime (30m, 8h, 90d); default: no expiry");
      cmd->add_flag("--force", *force,
                    "Even for a principal the current policy does not name (refused otherwise)");
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, principal, auditor, ttl, as_json, force] {
        json body{{"principal", *principal}, {"auditor", *auditor}};
        if (*force) body["force"] = true;
        if (!ttl->empty()) body["ttl"] = *ttl;
        return Simple(*f, "POST", "/v1/tokens", &body, JsonOr(as_json, [](const json& reply) {
          std::cout << reply.value("token", "") << "\n";
          std::cerr << "token " << Field(reply, "id") << " for principal "
                    << Field(reply, "principal") << ", expires "
                    << (Field(reply, "expires_at") == "-" ? "never" : Field(reply, "expires_at"))
                    << " (shown once: keep it now)\n";
        }));
      });
    }
    {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      CLI::App* cmd = token->add_subcommand("list", "List tokens (never their secrets)");
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, as_json] {
        return Simple(*f, "GET", "/v1/tokens", nullptr, [as_json](const json& reply) {
          if (*as_json) return PrintJson(reply);
          auto text = [](const json& t, const char* key) {
            return t.contains(key) && t[key].is_string() ? t[key].get<std::string>() : "-";
          };
          auto flag = [](const json& t, const char* key) {
            return t.contains(key) && t[key].is_boolean() && t[key].get<bool>();
          };
          const json& tokens = reply.contains("tokens") && reply["tokens"].is_array()
                                   ? reply["tokens"]
                                   : json::array();
          std::vector<std::vector<std::string>> rows;
          for (const json& t : tokens) {
            if (!t.is_object()) continue;
            const std::string kind = flag(t, "admin")     ? "admin"
                                     : flag(t, "auditor") ? "auditor"
                                                          : "principal";
            rows.push_back({text(t, "id"), text(t, "principal"), kind, text(t, "created_at"),
                            text(t, "expires_at"), text(t, "revoked_at")});
          }
          PrintTable({"ID", "PRINCIPAL", "KIND", "CREATED", "EXPIRES", "REVOKED"}, rows);
        });
      });
    }
    {
      auto f = std::make_shared<ClientFlags>();
      auto id = std::make_shared<std::string>();
      auto as_json = std::make_shared<bool>(false);
      CLI::App* cmd = token->add_subcommand("revoke", "Revoke a token by its id (token list)");
      cmd->add_option("ID", *id, "Token id")->required();
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, id, as_json] {
        return Simple(*f, "DELETE", Target("/v1/tokens", {}, *id), nullptr,
                      [id, as_json](const json&) {
                        if (*as_json) return PrintJson(json{{"id", *id}, {"revoked", true}});
                        std::cout << "revoked token " << *id << "\n";
                      });
      });
    }
  }
  {
    // CA rotation on a running server (the `ca` group's offline commands are elsewhere).
    CLI::App* ca = app.get_subcommand("ca");
    // Authorities as a table, one row each.
    auto print_authorities = [](const json& list) {
      std::vector<std::vector<std::string>> rows;
      for (const json& a : list) {
        rows.push_back({Field(a, "id"), Field(a, "state"), Field(a, "serial"),
                        Field(a, "not_after"), Field(a, "signs_until"), Field(a, "jwt_key_id")});
      }
      PrintTable({"ID", "STATE", "SERIAL", "NOT_AFTER", "SIGNS_UNTIL", "JWT_KEY_ID"}, rows);
    };
    auto print_authority = [print_authorities](const json& a) {
      print_authorities(json::array({a}));
    };
    {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      CLI::App* cmd = ca->add_subcommand("status", "The server's CA authorities (admin)");
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, as_json, print_authorities] {
        return Simple(*f, "GET", "/v1/ca", nullptr,
                      [as_json, print_authorities](const json& reply) {
                        if (*as_json) return PrintJson(reply);
                        print_authorities(reply.value("authorities", json::array()));
                        std::cout << "bundle sequence " << Field(reply, "bundle_sequence") << "\n";
                      });
      });
    }
    {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      auto csr_out = std::make_shared<std::string>();
      CLI::App* cmd = ca->add_subcommand(
          "prepare", "A new CA and JWT key, published in the bundle, signing nothing yet (admin)");
      cmd->add_option("--csr-out", *csr_out,
                      "Upstream mode: write the new CA key's certificate request here, for the "
                      "root to sign (ca sign-intermediate); else it is printed");
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, as_json, csr_out, print_authority] {
        const json body = json::object();
        absl::Status written;
        absl::Status prepared = Simple(*f, "POST", "/v1/ca/prepare", &body, [&](const json& a) {
          const std::string csr = a.contains("csr_pem") && a["csr_pem"].is_string()
                                      ? a["csr_pem"].get<std::string>()
                                      : "";
          if (!csr.empty() && !csr_out->empty()) written = base::WriteFile(*csr_out, csr);
          if (*as_json) return PrintJson(a);
          print_authority(a);
          if (csr.empty()) return;
          if (csr_out->empty()) std::cout << csr;
          std::cerr << "authority " << Field(a, "id")
                    << " awaits the upstream root's signature: sign its request where the root "
                       "lives (ca sign-intermediate --csr "
                    << (csr_out->empty() ? "FILE" : *csr_out)
                    << "), then ca activate --chain CHAIN\n";
        });
        return prepared.ok() ? written : prepared;
      });
    }
    {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      auto force = std::make_shared<bool>(false);
      auto chain = std::make_shared<std::string>();
      CLI::App* cmd = ca->add_subcommand(
          "activate", "The prepared authority signs from now on; the active one gets old");
      cmd->add_flag("--force", *force,
                    "Activate before the bundle's refresh hint has passed since prepare");
      cmd->add_option("--chain", *chain,
                      "Upstream mode: the prepared key's certificate from the root and the "
                      "chain up to it (ca sign-intermediate's output)");
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, as_json, force, chain, print_authority] {
        json body = json::object();
        if (*force) body["force"] = true;
        if (!chain->empty()) {
          absl::StatusOr<std::string> pem = base::ReadFile(*chain);
          if (!pem.ok()) return pem.status();
          body["chain"] = *pem;
        }
        return Simple(*f, "POST", "/v1/ca/activate", &body,
                      [as_json, print_authority](const json& a) {
                        if (*as_json) return PrintJson(a);
                        print_authority(a);
                      });
      });
    }
    for (const auto& [name, help] : std::vector<std::pair<std::string, std::string>>{
             {"retire",
              "Old authorities leave the bundle once what they signed expired (ID: that one)"},
             {"revoke-authority",
              "A compromised (not active) authority leaves the bundle at once"}}) {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      auto id = std::make_shared<int64_t>(0);
      CLI::App* cmd = ca->add_subcommand(name, help);
      CLI::Option* id_option =
          cmd->add_option("ID", *id, "Authority id (ca status)")->check(CLI::PositiveNumber);
      if (name == "revoke-authority") id_option->required();
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      const std::string target = "/v1/ca/" + name;
      OnRun(cmd, action, [f, as_json, id, target] {
        const json body = *id > 0 ? json{{"id", *id}} : json::object();
        return Simple(*f, "POST", target, &body, [as_json, id](const json& reply) {
          if (*as_json) return PrintJson(reply);
          if (reply.contains("retired")) {
            for (const json& r : reply["retired"]) std::cout << "authority " << r << " retired\n";
          } else {
            std::cout << "authority " << *id << " " << Field(reply, "state") << "\n";
          }
        });
      });
    }
  }
  {
    CLI::App* policy = app.add_subcommand("policy", "Apply and read policy versions (admin)");
    policy->require_subcommand(1);
    auto f = std::make_shared<ClientFlags>();
    auto file = std::make_shared<std::string>();
    auto apply_json = std::make_shared<bool>(false);
    auto dry_run = std::make_shared<bool>(false);
    CLI::App* apply = policy->add_subcommand(
        "apply", "Apply a TOML policy as a new version (an identical one changes nothing)");
    apply->add_option("file", *file, "Policy file (TOML)")->required();
    apply->add_flag("--dry-run", *dry_run, "Check it and show what would change; apply nothing");
    AddJsonFlag(apply, apply_json.get());
    AddClientFlags(apply, f.get());
    OnRun(apply, action, [f, file, apply_json, dry_run]() -> absl::Status {
      if (*dry_run) {
        TW_ASSIGN_OR_RETURN(json diff, PolicyDiff(*f, *file));
        diff["dry_run"] = true;
        JsonOr(apply_json, PrintPolicyDiff)(diff);
        return absl::OkStatus();
      }
      TW_ASSIGN_OR_RETURN(std::string source, base::ReadFile(*file));
      json body{{"source", source}};
      return Simple(*f, "POST", "/v1/policies", &body, JsonOr(apply_json, [](const json& reply) {
        std::cout << (reply.value("unchanged", false) ? "unchanged: identical to policy version "
                                                      : "policy version ")
                  << reply.value("version", int64_t{0}) << " (sha256 " << reply.value("sha256", "")
                  << ")\n";
      }));
    });
    auto validate_file = std::make_shared<std::string>();
    auto validate_json = std::make_shared<bool>(false);
    CLI::App* validate =
        policy->add_subcommand("validate", "Check a TOML policy file (offline; exit 1 if invalid)");
    validate->add_option("file", *validate_file, "Policy file (TOML)")->required();
    AddJsonFlag(validate, validate_json.get());
    OnRun(validate, action, [validate_file, validate_json]() -> absl::Status {
      TW_ASSIGN_OR_RETURN(LocalPolicy local, ReadPolicy(*validate_file));
      const json& p = local.policy.json();
      json summary{{"valid", true},
                   {"sha256", local.sha256_hex},
                   {"principals", json::array()},
                   {"scope_rules", p.value("scope_rules", json::array()).size()}};
      const json principals = p.value("principals", json::object());
      for (const auto& [name, rule] : principals.items()) summary["principals"].push_back(name);
      JsonOr(validate_json, [](const json& s) {
        std::cout << "valid: principals "
                  << absl::StrJoin(
                         s["principals"], ", ",
                         [](std::string* out, const json& n) { out->append(n.get<std::string>()); })
                  << "; " << s["scope_rules"].get<size_t>() << " scope rule(s); sha256 "
                  << s["sha256"].get<std::string>() << "\n";
      })(summary);
      return absl::OkStatus();
    });
    auto fd = std::make_shared<ClientFlags>();
    auto diff_file = std::make_shared<std::string>();
    auto diff_json = std::make_shared<bool>(false);
    CLI::App* diff =
        policy->add_subcommand("diff", "What applying a policy file would change (JSON Patch)");
    diff->add_option("file", *diff_file, "Policy file (TOML)")->required();
    AddJsonFlag(diff, diff_json.get());
    AddClientFlags(diff, fd.get());
    OnRun(diff, action, [fd, diff_file, diff_json]() -> absl::Status {
      TW_ASSIGN_OR_RETURN(json changes, PolicyDiff(*fd, *diff_file));
      JsonOr(diff_json, PrintPolicyDiff)(changes);
      return absl::OkStatus();
    });
    auto fs = std::make_shared<ClientFlags>();
    auto version = std::make_shared<int64_t>(0);
    auto show_json = std::make_shared<bool>(false);
    CLI::App* show = policy->add_subcommand("show", "Show the current or a given version");
    show->add_option("--version", *version, "Version number")
        ->check(CLI::Validator(
            [](std::string& v) {
              return !v.empty() && v.size() < 19 && v.find_first_not_of("0123456789") == v.npos &&
                             v != "0" && v[0] != '0'
                         ? std::string()
                         : "a policy version is a number from 1";
            },
            "VERSION"));
    AddJsonFlag(show, show_json.get());
    AddClientFlags(show, fs.get());
    OnRun(show, action, [fs, version, show_json] {
      std::string target = *version > 0 ? absl::StrCat("/v1/policies/", *version)
                                        : std::string("/v1/policies/current");
      return Simple(*fs, "GET", target, nullptr, JsonOr(show_json, [](const json& reply) {
        std::cout << "# policy version " << Field(reply, "version") << ", sha256 "
                  << Field(reply, "sha256") << ", applied " << Field(reply, "created_at") << "\n"
                  << reply.value("source", "");
      }));
    });
    auto fh = std::make_shared<ClientFlags>();
    auto history_json = std::make_shared<bool>(false);
    CLI::App* history = policy->add_subcommand("history", "List every version");
    AddJsonFlag(history, history_json.get());
    AddClientFlags(history, fh.get());
    OnRun(history, action, [fh, history_json] {
      return Simple(*fh, "GET", "/v1/policies", nullptr, JsonOr(history_json, [](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (const json& p : r.value("policies", json::array())) {
          rows.push_back({Field(p, "version"), Field(p, "created_at"), Field(p, "sha256")});
        }
        PrintTable({"VERSION", "APPLIED", "SHA256"}, rows);
      }));
    });
  }
  {
    CLI::App* federation = app.add_subcommand(
        "federation", "Trust other trust domains' bundles, fetched from their endpoints (admin)");
    federation->require_subcommand(1);
    auto print_federations = [](const json& list) {
      std::vector<std::vector<std::string>> rows;
      for (const json& r : list) {
        rows.push_back({Field(r, "trust_domain"), Field(r, "profile"), Field(r, "endpoint_url"),
                        Field(r, "bundle_sequence"), Field(r, "refreshed_at"),
                        Field(r, "last_error")});
      }
      PrintTable({"TRUST_DOMAIN", "PROFILE", "ENDPOINT", "SEQUENCE", "REFRESHED", "ERROR"}, rows);
    };
    {
      struct AddFlags {
        ClientFlags client;
        std::string trust_domain, endpoint, profile, endpoint_spiffe_id, bundle;
        bool json = false;
      };
      auto f = std::make_shared<AddFlags>();
      CLI::App* cmd = federation->add_subcommand(
          "add", "Trust a trust domain's bundle, fetched from its bundle endpoint");
      cmd->add_option("--trust-domain", f->trust_domain, "The foreign trust domain")->required();
      cmd->add_option("--endpoint", f->endpoint, "Its bundle endpoint's https URL")->required();
      cmd->add_option("--profile", f->profile,
                      "https_web (the host is authenticated by Web PKI roots) or https_spiffe "
                      "(by the endpoint's SPIFFE ID); never inferred")
          ->required()
          ->check(CLI::IsMember({"https_web", "https_spiffe"}));
      cmd->add_option("--endpoint-spiffe-id", f->endpoint_spiffe_id,
                      "https_spiffe: the SPIFFE ID the endpoint must present");
      cmd->add_option("--bundle", f->bundle,
                      "The trust domain's first bundle (SPIFFE JSON or PEM), obtained securely: "
                      "a self-serving https_spiffe endpoint is authenticated with it");
      AddJsonFlag(cmd, &f->json);
      // --bundle is the foreign domain's here; the server's comes from $TRUSTWARDEN_BUNDLE.
      AddClientFlags(cmd, &f->client, /*with_bundle=*/false);
      OnRun(cmd, action, [f, print_federations]() -> absl::Status {
        json body{{"trust_domain", f->trust_domain},
                  {"endpoint_url", f->endpoint},
                  {"profile", f->profile}};
        if (!f->endpoint_spiffe_id.empty()) body["endpoint_spiffe_id"] = f->endpoint_spiffe_id;
        if (!f->bundle.empty()) {
          TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(f->bundle));
          body["bundle"] = text;
        }
        return Simple(
            f->client, "POST", "/v1/federation", &body, [f, print_federations](const json& reply) {
              if (f->json) return PrintJson(reply);
              print_federations(json::array({reply}));
              if (reply.contains("last_error") && reply["last_error"].is_string()) {
                std::cerr << "added; the first fetch failed (it is retried at each refresh): "
                          << reply["last_error"].get<std::string>() << "\n";
              }
            });
      });
    }
    {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      CLI::App* cmd = federation->add_subcommand("list", "The federation relationships");
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      OnRun(cmd, action, [f, as_json, print_federations] {
        return Simple(*f, "GET", "/v1/federation", nullptr,
                      [as_json, print_federations](const json& reply) {
                        if (*as_json) return PrintJson(reply);
                        print_federations(reply.value("federations", json::array()));
                      });
      });
    }
    for (const auto& [name, help] : std::vector<std::pair<std::string, std::string>>{
             {"remove", "End a relationship: its bundle is no longer trusted"},
             {"refresh", "Fetch a trust domain's bundle now"}}) {
      auto f = std::make_shared<ClientFlags>();
      auto as_json = std::make_shared<bool>(false);
      auto td = std::make_shared<std::string>();
      CLI::App* cmd = federation->add_subcommand(name, help);
      cmd->add_option("TD", *td, "The foreign trust domain")->required();
      AddJsonFlag(cmd, as_json.get());
      AddClientFlags(cmd, f.get());
      const bool remove = name == "remove";
      OnRun(cmd, action, [f, as_json, td, remove, print_federations] {
        const std::string target = Target("/v1/federation", {}, *td) + (remove ? "" : "/refresh");
        const json body = json::object();
        return Simple(*f, remove ? "DELETE" : "POST", target, remove ? nullptr : &body,
                      [as_json, td, remove, print_federations](const json& reply) {
                        if (*as_json) return PrintJson(reply);
                        if (remove) {
                          std::cout << "federation with " << *td << " removed\n";
                        } else {
                          print_federations(json::array({reply}));
                        }
                      });
      });
    }
  }
  {
    CLI::App* bundle = app.add_subcommand("bundle", "The trust domain's SPIFFE bundle");
    bundle->require_subcommand(1);
    auto f = std::make_shared<ClientFlags>();
    auto pem = std::make_shared<bool>(false);
    auto as_json = std::make_shared<bool>(false);
    auto federated = std::make_shared<bool>(false);
    CLI::App* show = bundle->add_subcommand("show", "Fetch the bundle from the server");
    show->add_flag("--pem", *pem, "Print the X.509 authorities as PEM");
    show->add_flag("--federated", *federated,
                   "The SPIFFE bundle map of every trust domain the server trusts: its own and "
                   "the federated ones (svid verify --bundle takes it)");
    AddJsonFlag(show, as_json.get());  // the bundle is a JSON document: the default
    AddClientFlags(show, f.get());
    OnRun(show, action, [f, pem, as_json, federated]() -> absl::Status {
      TW_ASSIGN_OR_RETURN(auto client, Connect(*f));
      TW_ASSIGN_OR_RETURN(json reply, CallJson(*client, ClientFlags{.no_token = true}, "GET",
                                               *federated ? "/v1/bundles" : "/v1/bundle"));
      if (*federated && *pem && !*as_json) {
        TW_ASSIGN_OR_RETURN(std::vector<core::Bundle> bundles, core::ParseBundleMap(reply.dump()));
        for (const core::Bundle& b : bundles) std::cout << b.ToPem();
        return absl::OkStatus();
      }
      if (!*pem || *as_json) {
        PrintJson(reply);
        return absl::OkStatus();
      }
      TW_ASSIGN_OR_RETURN(core::Bundle parsed, core::Bundle::Parse(reply.dump()));
      std::cout << parsed.ToPem();
      return absl::OkStatus();
    });
  }
}

}  // namespace tw::cli
