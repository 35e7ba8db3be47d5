#include "cli/api_client.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "core/bundle.h"
#include "crypto/software_signer.h"

namespace tw::cli {
namespace {

std::string FlagOrEnv(const std::string& flag, const char* env, const char* fallback) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}

absl::StatusCode CodeFromApi(const std::string& code, int http) {
  if (code == "invalid_argument") return absl::StatusCode::kInvalidArgument;
  if (code == "unauthenticated") return absl::StatusCode::kUnauthenticated;
  if (code == "permission_denied") return absl::StatusCode::kPermissionDenied;
  if (code == "not_found") return absl::StatusCode::kNotFound;
  if (code == "resource_exhausted") return absl::StatusCode::kResourceExhausted;
  if (code == "already_exists") return absl::StatusCode::kAlreadyExists;
  if (code == "failed_precondition") return absl::StatusCode::kFailedPrecondition;
  return http >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
}

}  // namespace

void AddClientFlags(CLI::App* cmd, ClientFlags* flags) {
  cmd->add_option("--server", flags->server,
                  "Server URL (default $TRUSTWARDEN_SERVER or https://127.0.0.1:8443)");
  cmd->add_option("--token", flags->token, "API token (default $TRUSTWARDEN_TOKEN)");
  cmd->add_option("--bundle", flags->bundle,
                  "Trust bundle, JSON or PEM (default $TRUSTWARDEN_BUNDLE or "
                  "./trustwarden-data/bundle.pem)");
}

absl::StatusOr<std::string> BundlePem(const ClientFlags& flags) {
  std::string path = FlagOrEnv(flags.bundle, "TRUSTWARDEN_BUNDLE", "./trustwarden-data/bundle.pem");
  TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  TW_ASSIGN_OR_RETURN(core::Bundle bundle, core::Bundle::Parse(text));
  if (bundle.x509_authorities().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has no X.509 authority"));
  }
  return bundle.ToPem();
}

absl::StatusOr<std::unique_ptr<net::HttpsClient>> Connect(const ClientFlags& flags,
                                                          const std::string& chain_pem,
                                                          const std::string& key_pem) {
  TW_ASSIGN_OR_RETURN(std::string ca_pem, BundlePem(flags));
  std::shared_ptr<const crypto::SoftwareSigner> key;
  if (!key_pem.empty()) {
    TW_ASSIGN_OR_RETURN(key, crypto::SoftwareSigner::FromPem(key_pem));
  }
  return net::HttpsClient::Create(net::ClientOptions{
      .server = FlagOrEnv(flags.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443"),
      .ca_pem = std::move(ca_pem),
      .client_chain_pem = chain_pem,
      .client_key = std::move(key)});
}

net::Headers AuthHeaders(const ClientFlags& flags) {
  net::Headers headers;
  std::string token = flags.no_token ? "" : FlagOrEnv(flags.token, "TRUSTWARDEN_TOKEN", "");
  if (!token.empty()) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token));
  return headers;
}

absl::StatusOr<nlohmann::json> CallJson(net::HttpsClient& client, const ClientFlags& flags,
                                        absl::string_view method, absl::string_view target,
                                        const nlohmann::json* body) {
  TW_ASSIGN_OR_RETURN(net::Response response,
                      client.Request(method, target, body ? body->dump() : "", AuthHeaders(flags)));
  nlohmann::json reply = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status >= 400) {
    std::string code = "http_" + std::to_string(response.status), message = response.body;
    if (reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
      code = reply["error"].value("code", code);
      message = reply["error"].value("message", message);
    }
    return absl::Status(CodeFromApi(code, response.status),
                        absl::StrCat("server: ", code, ": ", message));
  }
  if (reply.is_discarded()) {
    return absl::UnavailableError(
        absl::StrCat("server: HTTP ", response.status, " with a body that is not JSON"));
  }
  return reply;
}

std::string UrlEncode(absl::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace tw::cli
