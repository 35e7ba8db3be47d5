// An in-process server for tests: a fresh temporary data directory, a SQLite store and
// software keys, listening on a loopback port chosen by the kernel. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/testing/temp_dir.h"
#include "server/server.h"

namespace tw::server {

class TestServer {
 public:
  // Adjusts the config before each start (limits, rates, ...).
  using Tweak = std::function<void(ServerConfig&)>;

  static absl::StatusOr<std::unique_ptr<TestServer>> Start(Tweak tweak = nullptr);
  ~TestServer();  // stops the server and removes the directory

  // Stops the server, keeping its data directory.
  void Stop();
  // Starts again on the same data directory and port, with `tweak` when given.
  absl::Status Restart(Tweak tweak = nullptr);

  uint16_t port() const { return port_; }
  std::string url() const;                                // https://127.0.0.1:PORT
  const std::string& dir() const { return dir_.path(); }  // a temporary directory, scratch space
  std::string data_dir() const { return dir_ / "data"; }
  std::string bundle_path() const { return data_dir() + "/bundle.pem"; }
  const std::string& bundle_pem() const { return bundle_pem_; }
  const std::string& admin_token() const { return admin_token_; }
  Server& server() { return *server_; }

 private:
  explicit TestServer(Tweak tweak) : tweak_(std::move(tweak)) {}
  absl::Status Launch(const std::string& listen);

  const base::TempDir dir_{"tw-test"};
  Tweak tweak_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::string bundle_pem_;
  std::string admin_token_;
};

}  // namespace tw::server
