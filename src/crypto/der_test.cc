#include "crypto/der.h"

#include "gtest/gtest.h"

namespace tw::crypto::der {
namespace {

base::Bytes B(std::initializer_list<uint8_t> v) { return base::Bytes(v); }

TEST(DerReaderTest, ReadsShortAndLongLengths) {
  base::Bytes long_form = {0x04, 0x81, 0x80};
  long_form.resize(3 + 0x80, 0xaa);
  Reader r(long_form);
  base::ByteView c;
  ASSERT_TRUE(r.Read(kOctetString, &c));
  EXPECT_EQ(c.size(), 0x80u);
  EXPECT_TRUE(r.empty());
}

TEST(DerReaderTest, RejectsNonDerLengths) {
  for (const base::Bytes& bad :
       {B({0x04, 0x80}), B({0x04, 0x81, 0x05, 1, 2, 3, 4, 5}), B({0x04, 0x82, 0x00, 0x81}),
        B({0x04, 0x05, 1, 2}), B({0x1f, 0x01, 0x00}), B({0x04})}) {
    Reader r(bad);
    base::ByteView c;
    EXPECT_FALSE(r.Read(bad[0], &c));
    EXPECT_EQ(r.remaining().size(), bad.size()) << "consumed input on failure";
  }
}

TEST(DerReaderTest, ReadsIntegersStrictly) {
  int64_t v;
  EXPECT_TRUE(Reader(B({0x02, 0x01, 0x00})).ReadUint(&v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(Reader(B({0x02, 0x02, 0x00, 0x80})).ReadUint(&v));
  EXPECT_EQ(v, 128);
  EXPECT_FALSE(Reader(B({0x02, 0x02, 0x00, 0x01})).ReadUint(&v));  // not minimal
  EXPECT_FALSE(Reader(B({0x02, 0x01, 0x80})).ReadUint(&v));        // negative
  EXPECT_FALSE(Reader(B({0x02, 0x00})).ReadUint(&v));              // empty
}

TEST(DerReaderTest, ReadsBooleansAndBitStrings) {
  bool b;
  EXPECT_TRUE(Reader(B({0x01, 0x01, 0xff})).ReadBool(&b));
  EXPECT_TRUE(b);
  EXPECT_FALSE(Reader(B({0x01, 0x01, 0x01})).ReadBool(&b));
  base::ByteView bits;
  EXPECT_TRUE(Reader(B({0x03, 0x02, 0x07, 0x80})).ReadBitStringBytes(&bits));
  EXPECT_FALSE(Reader(B({0x03, 0x02, 0x07, 0x81})).ReadBitStringBytes(&bits));  // unused bit set
  EXPECT_FALSE(Reader(B({0x03, 0x01, 0x01})).ReadBitStringBytes(&bits));
}

TEST(DerTimeTest, RoundTripsUtcAndGeneralizedTime) {
  for (absl::Time t :
       {absl::FromUnixSeconds(0), absl::FromUnixSeconds(1'800'000'000),
        absl::FromCivil(absl::CivilSecond(2049, 12, 31, 23, 59, 59), absl::UTCTimeZone()),
        absl::FromCivil(absl::CivilSecond(2050, 1, 1, 0, 0, 0), absl::UTCTimeZone())}) {
    base::Bytes out;
    Writer(&out).AddTime(t);
    EXPECT_EQ(out[0], absl::ToCivilYear(t, absl::UTCTimeZone()).year() >= 2050 ? kGeneralizedTime
                                                                               : kUtcTime);
    absl::Time back;
    ASSERT_TRUE(Reader(out).ReadTime(&back));
    EXPECT_EQ(back, t);
  }
}

TEST(DerTimeTest, RejectsMalformedTimes) {
  absl::Time t;
  for (const char* s : {"2601011200Z", "260101120000", "261301120000Z", "260132120000Z",
                        "260101250000Z", "26010112000aZ", "260101120000+0100"}) {
    base::Bytes out;
    Writer(&out).Add(kUtcTime, base::AsBytes(s));
    EXPECT_FALSE(Reader(out).ReadTime(&t)) << s;
  }
}

TEST(DerWriterTest, PatchesLongLengths) {
  base::Bytes out;
  Writer w(&out);
  size_t h = w.Open(kSequence);
  base::Bytes payload(300, 0x11);
  w.Add(kOctetString, payload);
  w.Close(h);
  Reader r(out), seq(base::ByteView{});
  ASSERT_TRUE(r.Enter(kSequence, &seq));
  base::ByteView c;
  ASSERT_TRUE(seq.Read(kOctetString, &c));
  EXPECT_EQ(c.size(), 300u);
}

TEST(DerWriterTest, EncodesIntegersAndNamedBits) {
  base::Bytes out;
  Writer w(&out);
  w.AddUint(0);
  w.AddUint(128);
  w.AddNamedBits(1 << 0);               // digitalSignature
  w.AddNamedBits((1 << 5) | (1 << 6));  // keyCertSign | cRLSign
  EXPECT_EQ(out, B({0x02, 0x01, 0x00, 0x02, 0x02, 0x00, 0x80, 0x03, 0x02, 0x07, 0x80, 0x03, 0x02,
                    0x01, 0x06}));
}

TEST(DerOidTest, Decodes) {
  EXPECT_EQ(DecodeOid(B({0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01})), "1.2.840.10045.2.1");
  EXPECT_EQ(DecodeOid(B({0x88, 0x37, 0x03})), "2.999.3");
  EXPECT_TRUE(DecodeOid(B({0x2a, 0x86})).empty());
  EXPECT_TRUE(DecodeOid(B({0x2a, 0x80, 0x01})).empty());
}

}  // namespace
}  // namespace tw::crypto::der
