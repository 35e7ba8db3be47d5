// `trustwarden bootstrap --server URL --fingerprint SHA256`: trust a server for the first
// time, as `step ca bootstrap` does. The bundle is fetched over an unverified connection,
// accepted only when one of its CA certificates has the fingerprint the operator was given
// (the server prints it at start), then fetched again over a connection verified with that
// bundle, and written where the other commands look for it by default.
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/bytes.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/bundle.h"
#include "crypto/digest.h"
#include "net/https_client.h"

namespace tw::cli {
namespace {

using nlohmann::json;

struct BootstrapFlags {
  std::string server, fingerprint, out = "./trustwarden-data";
  bool force = false, json = false;
};

absl::StatusOr<json> FetchBundle(const net::ClientOptions& options) {
  TW_ASSIGN_OR_RETURN(auto client, net::HttpsClient::Create(options));
  TW_ASSIGN_OR_RETURN(json bundle,
                      CallJson(*client, ClientFlags{.no_token = true}, "GET", "/v1/bundle"));
  return bundle;
}

absl::Status Bootstrap(const BootstrapFlags& f) {
  // "SHA256:AB:CD...", OpenSSL's "sha256 Fingerprint=AB:CD...", "ab cd ..." and "abcd..." all
  // name the same digest.
  std::string pin = absl::AsciiStrToLower(f.fingerprint);
  if (const size_t eq = pin.rfind('='); eq != std::string::npos) pin = pin.substr(eq + 1);
  if (absl::StartsWith(pin, "sha256:")) pin = pin.substr(7);
  pin = absl::StrReplaceAll(pin, {{":", ""}, {" ", ""}});
  if (pin.size() != 64 || pin.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("--fingerprint: want the SHA-256 the server printed");
  }
  const std::string server = FlagOrEnv(f.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443");
  TW_ASSIGN_OR_RETURN(
      json fetched,
      FetchBundle({.server = server, .timeout = absl::Seconds(10), .verify_peer = false}));
  TW_ASSIGN_OR_RETURN(core::Bundle bundle, core::Bundle::Parse(fetched.dump()));
  bool pinned = false;
  for (const auto& authority : bundle.x509_authorities()) {
    pinned = pinned || base::HexEncode(crypto::Sha256(authority->certificate.der())) == pin;
  }
  if (!pinned) {
    return absl::PermissionDeniedError(absl::StrCat(
        "no CA certificate of ", server, "'s bundle has fingerprint ", pin,
        ": this is not the server you were told about (or the fingerprint is mistyped); "
        "nothing was written"));
  }
  // The server must hold a certificate of that CA: fetch again, verified with it.
  TW_ASSIGN_OR_RETURN(
      json verified,
      FetchBundle({.server = server, .ca_pem = bundle.ToPem(), .timeout = absl::Seconds(10)}));
  if (verified != fetched) {
    return absl::UnavailableError("the server's bundle changed between two reads; try again");
  }
  const std::string json_path = f.out + "/bundle.json", pem_path = f.out + "/bundle.pem";
  if (auto existing = base::ReadFile(json_path); existing.ok() && !f.force) {
    auto old = core::Bundle::Parse(*existing);
    if (!old.ok() || old->ToPem() != bundle.ToPem()) {
      return absl::AlreadyExistsError(
          absl::StrCat(json_path, " holds another bundle; --force replaces it"));
    }
  }
  TW_RETURN_IF_ERROR(base::MakeDirectory(f.out, 0700));
  TW_RETURN_IF_ERROR(base::WriteFile(json_path, fetched.dump(2) + "\n"));
  TW_RETURN_IF_ERROR(base::WriteFile(pem_path, bundle.ToPem()));
  if (f.json) {
    PrintJson(json{{"server", server},
                   {"trust_domain", bundle.trust_domain().name()},
                   {"fingerprint", pin},
                   {"bundle", json_path},
                   {"bundle_pem", pem_path}});
  } else {
    std::cout << "trusted " << server << " (trust domain " << bundle.trust_domain().name()
              << ", CA fingerprint " << pin << ")\nwrote " << json_path << " and " << pem_path
              << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterBootstrapCommand(CLI::App& app, Action* action) {
  auto f = std::make_shared<BootstrapFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bootstrap", "Trust a server: fetch its bundle and check it against a CA fingerprint");
  cmd->add_option("--server", f->server,
                  "Server URL (default $TRUSTWARDEN_SERVER or https://127.0.0.1:8443)");
  cmd->add_option("--fingerprint", f->fingerprint,
                  "SHA-256 of the server's CA certificate, as the server printed it")
      ->required();
  cmd->add_option("--out", f->out,
                  "Directory for bundle.json and bundle.pem (default ./trustwarden-data, where "
                  "the other commands look)");
  cmd->add_flag("--force", f->force, "Replace a different bundle already there");
  AddJsonFlag(cmd, &f->json);
  cmd->callback([action, f] {
    *action = [f] {
      absl::Status s = Bootstrap(*f);
      return s.ok() ? 0 : Fail(s);
    };
  });
}

}  // namespace tw::cli
