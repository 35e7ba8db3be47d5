#include "crypto/der.h"

#include <algorithm>
#include <string>

namespace tw::crypto::der {

bool Reader::ReadAny(uint8_t* tag, base::ByteView* contents, base::ByteView* element) {
  if (data_.size() < 2) return false;
  uint8_t t = data_[0];
  if ((t & 0x1f) == 0x1f) return false;  // high tag numbers are not used by X.509
  size_t len = data_[1];
  size_t header = 2;
  if (len & 0x80) {
    size_t n = len & 0x7f;
    if (n == 0 || n > 4 || data_.size() < 2 + n) return false;  // indefinite or huge
    if (data_[2] == 0) return false;                            // not minimal
    len = 0;
    for (size_t i = 0; i < n; ++i) len = (len << 8) | data_[2 + i];
    if (len < 0x80) return false;  // should have used the short form
    header += n;
  }
  if (data_.size() - header < len) return false;
  *tag = t;
  if (contents != nullptr) *contents = data_.subspan(header, len);
  if (element != nullptr) *element = data_.subspan(0, header + len);
  data_ = data_.subspan(header + len);
  return true;
}

bool Reader::Read(uint8_t tag, base::ByteView* contents, base::ByteView* element) {
  if (!Peek(tag)) return false;
  Reader copy = *this;
  uint8_t t;
  if (!copy.ReadAny(&t, contents, element)) return false;
  *this = copy;
  return true;
}

bool Reader::Enter(uint8_t tag, Reader* inner) {
  base::ByteView contents;
  if (!Read(tag, &contents)) return false;
  *inner = Reader(contents);
  return true;
}

bool Reader::ReadOptional(uint8_t tag, base::ByteView* contents, bool* present) {
  *present = false;
  if (!Peek(tag)) return true;
  if (!Read(tag, contents)) return false;
  *present = true;
  return true;
}

bool Reader::ReadUint(int64_t* value, uint8_t tag) {
  base::ByteView c;
  Reader copy = *this;
  if (!copy.Read(tag, &c) || c.empty() || c.size() > 9) return false;
  if (c[0] & 0x80) return false;                                  // negative
  if (c.size() > 1 && c[0] == 0 && !(c[1] & 0x80)) return false;  // not minimal
  if (c.size() == 9 && c[0] != 0) return false;
  uint64_t v = 0;
  for (uint8_t b : c) v = (v << 8) | b;
  if (v > static_cast<uint64_t>(INT64_MAX)) return false;
  *value = static_cast<int64_t>(v);
  *this = copy;
  return true;
}

bool Reader::ReadBool(bool* value) {
  base::ByteView c;
  Reader copy = *this;
  if (!copy.Read(kBoolean, &c) || c.size() != 1 || (c[0] != 0 && c[0] != 0xff)) return false;
  *value = c[0] == 0xff;
  *this = copy;
  return true;
}

bool Reader::ReadBitStringBytes(base::ByteView* bits) {
  base::ByteView c;
  Reader copy = *this;
  if (!copy.Read(kBitString, &c) || c.empty() || c[0] > 7) return false;
  if (c.size() == 1 && c[0] != 0) return false;
  if (c[0] != 0) {
    // DER: the unused bits are zero.
    uint8_t mask = static_cast<uint8_t>((1u << c[0]) - 1);
    if (c.back() & mask) return false;
  }
  *bits = c.subspan(1);
  *this = copy;
  return true;
}

bool Reader::ReadBitStringOctets(base::ByteView* octets) {
  Reader copy = *this;
  base::ByteView c;
  if (!copy.Read(kBitString, &c) || c.empty() || c[0] != 0) return false;
  *octets = c.subspan(1);
  *this = copy;
  return true;
}

bool Reader::ReadPositiveInteger(base::ByteView* contents) {
  Reader copy = *this;
  base::ByteView c;
  if (!copy.Read(kInteger, &c) || c.empty() || (c[0] & 0x80)) return false;
  if (c.size() > 1 && c[0] == 0 && !(c[1] & 0x80)) return false;  // not minimal
  if (c.size() == 1 && c[0] == 0) return false;                   // zero
  *contents = c;
  *this = copy;
  return true;
}

namespace {

bool Digits(absl::string_view s, int* out) {
  int v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  *out = v;
  return true;
}

}  // namespace

bool Reader::ReadTime(absl::Time* t) {
  uint8_t tag;
  base::ByteView c;
  Reader copy = *this;
  if (!copy.ReadAny(&tag, &c)) return false;
  absl::string_view s = base::AsChars(c);
  int year, mon, day, hour, min, sec;
  absl::string_view rest;
  if (tag == kUtcTime) {
    if (s.size() != 13 || !Digits(s.substr(0, 2), &year)) return false;
    year += year < 50 ? 2000 : 1900;
    rest = s.substr(2);
  } else if (tag == kGeneralizedTime) {
    if (s.size() != 15 || !Digits(s.substr(0, 4), &year)) return false;
    rest = s.substr(4);
  } else {
    return false;
  }
  if (rest.back() != 'Z' || !Digits(rest.substr(0, 2), &mon) || !Digits(rest.substr(2, 2), &day) ||
      !Digits(rest.substr(4, 2), &hour) || !Digits(rest.substr(6, 2), &min) ||
      !Digits(rest.substr(8, 2), &sec)) {
    return false;
  }
  absl::CivilSecond cs(year, mon, day, hour, min, sec);
  // CivilSecond normalises out-of-range fields; a round trip proves they were in range.
  if (cs.year() != year || cs.month() != mon || cs.day() != day || cs.hour() != hour ||
      cs.minute() != min || cs.second() != sec) {
    return false;
  }
  *t = absl::FromCivil(cs, absl::UTCTimeZone());
  *this = copy;
  return true;
}

size_t Writer::Open(uint8_t tag) {
  out_->push_back(tag);
  out_->push_back(0);
  return out_->size();
}

void Writer::Close(size_t handle) {
  size_t len = out_->size() - handle;
  if (len < 0x80) {
    (*out_)[handle - 1] = static_cast<uint8_t>(len);
    return;
  }
  uint8_t buf[4];
  int n = 0;
  for (size_t v = len; v != 0; v >>= 8) buf[n++] = static_cast<uint8_t>(v);
  (*out_)[handle - 1] = static_cast<uint8_t>(0x80 | n);
  uint8_t be[4];
  for (int i = 0; i < n; ++i) be[i] = buf[n - 1 - i];
  out_->insert(out_->begin() + static_cast<ptrdiff_t>(handle), be, be + n);
}

void Writer::Add(uint8_t tag, base::ByteView contents) {
  size_t h = Open(tag);
  out_->insert(out_->end(), contents.begin(), contents.end());
  Close(h);
}

void Writer::AddUint(uint64_t value, uint8_t tag) {
  uint8_t buf[9];
  int n = 0;
  do {
    buf[n++] = static_cast<uint8_t>(value);
    value >>= 8;
  } while (value != 0);
  if (buf[n - 1] & 0x80) buf[n++] = 0;
  out_->push_back(tag);
  out_->push_back(static_cast<uint8_t>(n));
  for (int i = n - 1; i >= 0; --i) out_->push_back(buf[i]);
}

void Writer::AddUnsignedInteger(base::ByteView magnitude) {
  size_t skip = 0;
  while (skip + 1 < magnitude.size() && magnitude[skip] == 0) ++skip;
  magnitude = magnitude.subspan(skip);
  size_t h = Open(kInteger);
  if (magnitude.empty() || (magnitude[0] & 0x80)) out_->push_back(0);
  out_->insert(out_->end(), magnitude.begin(), magnitude.end());
  Close(h);
}

void Writer::AddBool(bool value) {
  uint8_t v = value ? 0xff : 0x00;
  Add(kBoolean, base::ByteView(&v, 1));
}

void Writer::AddBitString(base::ByteView bytes) {
  size_t h = Open(kBitString);
  out_->push_back(0);
  out_->insert(out_->end(), bytes.begin(), bytes.end());
  Close(h);
}

void Writer::AddNamedBits(uint16_t bits) {
  // Named bit n is the n-th most significant bit; trailing zero bits are dropped (X.690 §11.2.2).
  uint8_t bytes[2] = {0, 0};
  int highest = -1;
  for (int i = 0; i < 16; ++i) {
    if (bits & (1u << i)) {
      bytes[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
      highest = i;
    }
  }
  size_t h = Open(kBitString);
  if (highest < 0) {
    out_->push_back(0);
  } else {
    int nbytes = highest / 8 + 1;
    out_->push_back(static_cast<uint8_t>(7 - highest % 8));
    out_->insert(out_->end(), bytes, bytes + nbytes);
  }
  Close(h);
}

void Writer::AddTime(absl::Time t) {
  absl::CivilSecond cs = absl::ToCivilSecond(t, absl::UTCTimeZone());
  char buf[20];
  uint8_t tag;
  int n;
  if (cs.year() >= 1950 && cs.year() < 2050) {
    tag = kUtcTime;
    n = std::snprintf(buf, sizeof buf, "%02d%02d%02d%02d%02d%02dZ",
                      static_cast<int>(cs.year() % 100), cs.month(), cs.day(), cs.hour(),
                      cs.minute(), cs.second());
  } else {
    tag = kGeneralizedTime;
    n = std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02dZ", static_cast<int>(cs.year()),
                      cs.month(), cs.day(), cs.hour(), cs.minute(), cs.second());
  }
  Add(tag, base::AsBytes(absl::string_view(buf, static_cast<size_t>(n))));
}

std::string DecodeOid(base::ByteView c) {
  std::string out;
  uint64_t v = 0;
  bool first = true;
  if (c.empty() || (c.back() & 0x80)) return {};
  for (size_t i = 0; i < c.size(); ++i) {
    if (v == 0 && c[i] == 0x80) return {};  // non-minimal arc
    if (v > (UINT64_MAX >> 7)) return {};   // arc too large for this decoder
    v = (v << 7) | (c[i] & 0x7f);
    if (c[i] & 0x80) continue;
    if (first) {
      uint64_t a = v < 80 ? v / 40 : 2;
      out = std::to_string(a) + "." + std::to_string(v - a * 40);
      first = false;
    } else {
      out += "." + std::to_string(v);
    }
    v = 0;
  }
  return out;
}

}  // namespace tw::crypto::der
