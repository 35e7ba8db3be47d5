// Minimal strict DER (X.690 §10) reader and writer for the certificate hot paths.
// OpenSSL 3's X509 object API costs ~100 µs per parsed or built certificate, several
// times an ECDSA signature; these work on bytes in place. Not thread-safe per object.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/bytes.h"

namespace tw::crypto::der {

// Universal and context tags used by X.509 (single-byte tags only).
inline constexpr uint8_t kBoolean = 0x01;
inline constexpr uint8_t kInteger = 0x02;
inline constexpr uint8_t kBitString = 0x03;
inline constexpr uint8_t kOctetString = 0x04;
inline constexpr uint8_t kNull = 0x05;
inline constexpr uint8_t kOid = 0x06;
inline constexpr uint8_t kEnumerated = 0x0a;
inline constexpr uint8_t kUtf8String = 0x0c;
inline constexpr uint8_t kPrintableString = 0x13;
inline constexpr uint8_t kIa5String = 0x16;
inline constexpr uint8_t kUtcTime = 0x17;
inline constexpr uint8_t kGeneralizedTime = 0x18;
inline constexpr uint8_t kSequence = 0x30;
inline constexpr uint8_t kSet = 0x31;
constexpr uint8_t ContextPrimitive(int n) { return static_cast<uint8_t>(0x80 | n); }
constexpr uint8_t ContextConstructed(int n) { return static_cast<uint8_t>(0xa0 | n); }

// Reads DER elements from a byte range. Every method returns false, consuming nothing,
// when the next element is absent, has another tag, or is not valid DER.
class Reader {
 public:
  explicit Reader(base::ByteView data) : data_(data) {}

  bool empty() const { return data_.empty(); }
  base::ByteView remaining() const { return data_; }
  // True when the next element has tag `tag`.
  bool Peek(uint8_t tag) const { return !data_.empty() && data_[0] == tag; }

  // Reads an element with tag `tag` into its contents (and, if asked, the whole TLV).
  bool Read(uint8_t tag, base::ByteView* contents, base::ByteView* element = nullptr);
  // Reads any element: its tag and contents.
  bool ReadAny(uint8_t* tag, base::ByteView* contents, base::ByteView* element = nullptr);
  // Reads an element with tag `tag` into a Reader over its contents.
  bool Enter(uint8_t tag, Reader* inner);
  // Reads an element if present; `*present` tells whether it was.
  bool ReadOptional(uint8_t tag, base::ByteView* contents, bool* present);

  // A non-negative INTEGER that fits in int64.
  bool ReadUint(int64_t* value, uint8_t tag = kInteger);
  // A DER BOOLEAN (0x00 or 0xff).
  bool ReadBool(bool* value);
  // A BIT STRING's bytes; unused trailing bits (which DER requires zero) are allowed.
  bool ReadBitStringBytes(base::ByteView* bits);
  // A BIT STRING holding whole octets (signatures, public keys): no unused bits.
  bool ReadBitStringOctets(base::ByteView* octets);
  // A positive, minimally encoded INTEGER's contents (serial numbers).
  bool ReadPositiveInteger(base::ByteView* contents);
  // UTCTime or GeneralizedTime in the RFC 5280 §4.1.2.5 form (seconds, 'Z').
  bool ReadTime(absl::Time* t);

 private:
  base::ByteView data_;
};

// Appends DER to a byte vector; constructed elements are opened and closed around
// their contents. Lengths are patched on close.
class Writer {
 public:
  explicit Writer(base::Bytes* out) : out_(out) {}

  // Opens a constructed element; returns a handle for Close.
  size_t Open(uint8_t tag);
  void Close(size_t handle);

  void Add(uint8_t tag, base::ByteView contents);
  void AddRaw(base::ByteView element) { out_->insert(out_->end(), element.begin(), element.end()); }
  void AddUint(uint64_t value, uint8_t tag = kInteger);
  // An INTEGER from unsigned big-endian magnitude bytes (leading zeros stripped).
  void AddUnsignedInteger(base::ByteView magnitude);
  void AddBool(bool value);
  void AddBitString(base::ByteView bytes);
  // A KeyUsage-style named BIT STRING from the low bits of `bits` (bit 0 = first named).
  void AddNamedBits(uint16_t bits);
  // UTCTime for years 1950..2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
  void AddTime(absl::Time t);

 private:
  base::Bytes* out_;
};

// Decodes OBJECT IDENTIFIER contents to dotted form; empty if invalid.
std::string DecodeOid(base::ByteView contents);

}  // namespace tw::crypto::der
