#include "net/https_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "core/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::net {
namespace {

// A host that takes the TCP connection and then says nothing: without a deadline the TLS
// handshake would wait forever.
TEST(ParseServerUrlTest, ReadsHostAndPortWithTheHttpsDefault) {
  std::string host, port;
  ASSERT_TRUE(ParseServerUrl("https://ca.example.org:8443/", &host, &port).ok());
  EXPECT_EQ(host, "ca.example.org");
  EXPECT_EQ(port, "8443");
  ASSERT_TRUE(ParseServerUrl("https://[::1]", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, "443");
}

TEST(ParseServerUrlTest, RefusesAnythingButAnHttpsOrigin) {
  std::string host, port;
  for (const char* url : {"http://127.0.0.1:8443", "127.0.0.1:8443", "https://", "https://h:0",
                          "https://h:1/v1", "https://h:1?x=1", "https://user@h:1", "https://h:1#f",
                          "https://h:99999", "https://[::1"}) {
    absl::Status s = ParseServerUrl(url, &host, &port);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("server URL")) << url;
  }
}

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
