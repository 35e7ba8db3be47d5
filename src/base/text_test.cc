#include "base/text.h"

#include "gtest/gtest.h"

namespace tw::base {
namespace {

TEST(TextTest, AcceptsUtf8) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(IsUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"));
  EXPECT_TRUE(IsUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST(TextTest, RejectsMalformedUtf8) {
  for (const char* bad :
       {"\xff", "\xc3\x28", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80", "abc\xe2\x82", "\x80", "12345678\xc3"}) {
    EXPECT_FALSE(IsUtf8(bad)) << Quote(bad);
  }
}

TEST(TextTest, QuotesEveryByteSafely) {
  EXPECT_EQ(Quote("abc"), "\"abc\"");
  EXPECT_EQ(Quote("/\xff\n\"x"), "\"/\\xff\\n\\\"x\"");
  EXPECT_EQ(Quote("abcdef", 3), "\"abc...\"");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string quoted = Quote(all, all.size());
  for (char c : quoted) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
}

}  // namespace
}  // namespace tw::base
