#include "cli/api_client.h"

#include <algorithm>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/api_status.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "core/bundle.h"
#include "crypto/software_signer.h"

namespace tw::cli {

std::string FlagOrEnv(const std::string& flag, const char* env, absl::string_view fallback) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}

namespace {

absl::StatusCode CodeFromApi(const std::string& code, int http) {
  const absl::StatusCode known = base::StatusCodeOfName(code);
  if (known != absl::StatusCode::kUnknown && known != absl::StatusCode::kInternal) return known;
  return http >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
}

}  // namespace

void AddClientFlags(CLI::App* cmd, ClientFlags* flags, bool with_bundle) {
  cmd->add_option("--server", flags->server,
                  "Server URL (default $TRUSTWARDEN_SERVER or https://127.0.0.1:8443)");
  cmd->add_option("--token", flags->token, "API token (default $TRUSTWARDEN_TOKEN)");
  if (!with_bundle) return;
  cmd->add_option("--bundle", flags->bundle,
                  "Trust bundle, SPIFFE JSON or PEM (default $TRUSTWARDEN_BUNDLE or "
                  "./trustwarden-data/bundle.json)");
}

absl::StatusOr<std::string> BundlePem(const ClientFlags& flags) {
  std::string path = FlagOrEnv(flags.bundle, "TRUSTWARDEN_BUNDLE", kDefaultBundle);
  TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  TW_ASSIGN_OR_RETURN(core::Bundle bundle, core::Bundle::Parse(text));
  if (bundle.x509_authorities().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has no X.509 authority"));
  }
  return bundle.ToPem();
}

absl::StatusOr<std::unique_ptr<net::HttpsClient>> Connect(const ClientFlags& flags,
                                                          const std::string& chain_pem,
                                                          const std::string& key_pem,
                                                          absl::Duration timeout) {
  TW_ASSIGN_OR_RETURN(std::string ca_pem, BundlePem(flags));
  std::shared_ptr<const crypto::SoftwareSigner> key;
  if (!key_pem.empty()) {
    TW_ASSIGN_OR_RETURN(key, crypto::SoftwareSigner::FromPem(key_pem));
  }
  return net::HttpsClient::Create(net::ClientOptions{
      .server = FlagOrEnv(flags.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443"),
      .ca_pem = std::move(ca_pem),
      .client_chain_pem = chain_pem,
      .client_key = std::move(key),
      .connect_timeout = std::min(timeout, absl::Seconds(5)),
      .timeout = timeout});
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
  absl::StatusOr<net::Response> sent =
      client.Request(method, target, body ? body->dump() : "", AuthHeaders(flags));
  if (!sent.ok() && absl::StrContains(sent.status().message(), "certificate verify failed")) {
    // Reachable, but not the server the bundle names: say which bundle, and the fix.
    return absl::Status(
        sent.status().code(),
        absl::StrCat(sent.status().message(), ": the server's certificate does not chain to ",
                     FlagOrEnv(flags.bundle, "TRUSTWARDEN_BUNDLE", kDefaultBundle),
                     "; name the right one (--bundle, TRUSTWARDEN_BUNDLE) or trust this server "
                     "with trustwarden bootstrap"));
  }
  TW_ASSIGN_OR_RETURN(net::Response response, std::move(sent));
  nlohmann::json reply = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status >= 400) {
    std::string code = "http_" + std::to_string(response.status), message = response.body;
    if (reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
      code = reply["error"].value("code", code);
      message = reply["error"].value("message", message);
    }
    // Refused for want of credentials none were sent: say what is missing first.
    const bool tokenless = !flags.no_token && AuthHeaders(flags).empty() &&
                           (response.status == 401 || response.status == 403);
    return absl::Status(CodeFromApi(code, response.status),
                        absl::StrCat(tokenless ? "no token: set TRUSTWARDEN_TOKEN or pass --token "
                                                 "(the admin token is DATA_DIR/admin.token); "
                                               : "",
                                     "server: ", message));
  }
  if (reply.is_discarded()) {
    return absl::UnavailableError(
        absl::StrCat("server: HTTP ", response.status, " with a body that is not JSON"));
  }
  return reply;
}

std::string Target(absl::string_view path,
                   const std::vector<std::pair<std::string, std::string>>& params,
                   absl::string_view segment) {
  boost::urls::url target;
  target.set_path(boost::core::string_view(path.data(), path.size()));
  if (!segment.empty()) {
    target.segments().push_back(boost::core::string_view(segment.data(), segment.size()));
  }
  // Everything but RFC 3986 unreserved characters is escaped: the server reads '+' in a
  // query as a space (HTML forms), so the '+' of "10:00+01:00" must travel as %2B.
  std::string query;
  for (const auto& [name, value] : params) {
    if (value.empty()) continue;
    absl::StrAppend(&query, query.empty() ? "" : "&", name, "=",
                    boost::urls::encode(value, boost::urls::unreserved_chars));
  }
  if (!query.empty()) target.set_encoded_query(query);
  return std::string(target.buffer());
}

}  // namespace tw::cli
