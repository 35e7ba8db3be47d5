#include "net/https_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "core/testing/test_pki.h"
#include "gtest/gtest.h"

namespace tw::net {
namespace {

// A host that takes the TCP connection and then says nothing: without a deadline the TLS
// handshake would wait forever.
TEST(HttpsClientTest, ASilentServerFailsAtTheConnectDeadline) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);  // never accepted, never answered
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto client =
      HttpsClient::Create({.server = absl::StrCat("https://127.0.0.1:", ntohs(addr.sin_port)),
                           .ca_pem = core::testing::MakeRootCa("example.org").pem(),
                           .connect_timeout = absl::Milliseconds(300)});
  ASSERT_TRUE(client.ok()) << client.status();
  auto r = (*client)->Request("GET", "/healthz");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("timeout"), absl::string_view::npos) << r.status();
  ::close(fd);
}

}  // namespace
}  // namespace tw::net
