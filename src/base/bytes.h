// Byte buffers at module boundaries: DER, signatures, digests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tw::base {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView AsBytes(absl::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline absl::string_view AsChars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes ToBytes(absl::string_view s) { return Bytes(s.begin(), s.end()); }

// Lower-case hexadecimal.
std::string HexEncode(ByteView b);

inline bool Equal(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// Unpadded base64url (RFC 4648 §5), as JOSE uses it.
std::string Base64UrlEncode(absl::string_view data);
// Strict inverse of Base64UrlEncode: only the base64url alphabet, no padding or spaces.
bool Base64UrlDecode(absl::string_view text, std::string* out);

}  // namespace tw::base
