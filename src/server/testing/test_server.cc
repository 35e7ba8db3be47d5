#include "server/testing/test_server.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::server {

absl::StatusOr<std::unique_ptr<TestServer>> TestServer::Start(Tweak tweak) {
  std::unique_ptr<TestServer> out(new TestServer(std::move(tweak)));
  TW_RETURN_IF_ERROR(out->Launch("127.0.0.1:0"));
  return out;
}

TestServer::~TestServer() { Stop(); }

void TestServer::Stop() { server_.reset(); }

absl::Status TestServer::Restart(Tweak tweak) {
  Stop();
  if (tweak) tweak_ = std::move(tweak);
  return Launch(absl::StrCat("127.0.0.1:", port_));
}

std::string TestServer::url() const { return absl::StrCat("https://127.0.0.1:", port_); }

absl::Status TestServer::Launch(const std::string& listen) {
  ServerConfig config;
  config.data_dir = data_dir();
  config.listen = listen;
  config.threads = 2;
  config.worker_threads = 8;
  if (tweak_) tweak_(config);
  TW_RETURN_IF_ERROR(base::MakeDirectory(config.data_dir));
  TW_ASSIGN_OR_RETURN(auto store, store::SqliteStore::Open(config.data_dir + "/trustwarden.db"));
  TW_ASSIGN_OR_RETURN(ServerKeys keys, OpenServerKeys(config, base::Clock::System()));
  TW_ASSIGN_OR_RETURN(server_, Server::Start(config, std::move(store), std::move(keys)));
  port_ = server_->port();
  TW_ASSIGN_OR_RETURN(std::string token, base::ReadFile(config.data_dir + "/admin.token"));
  admin_token_ = std::string(absl::StripTrailingAsciiWhitespace(token));
  TW_ASSIGN_OR_RETURN(bundle_pem_, base::ReadFile(bundle_path()));
  return absl::OkStatus();
}

}  // namespace tw::server
