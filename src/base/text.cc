#include "base/text.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tw::base {

bool IsUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint64_t word;  // eight ASCII bytes at a time
    if (s.size() - i >= 8 &&
        (std::memcpy(&word, s.data() + i, 8), word & 0x8080808080808080) == 0) {
      i += 8;
      continue;
    }
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string Quote(absl::string_view s, size_t max_bytes) {
  const bool cut = s.size() > max_bytes;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, max_bytes)), cut ? "...\"" : "\"");
}

}  // namespace tw::base
