#include "revocation/entry.h"

namespace tw::revocation {

absl::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kInstance:
      return "instance";
    case Kind::kAgent:
      return "agent";
    case Kind::kSubtree:
      return "subtree";
    case Kind::kPrincipal:
      return "principal";
  }
  return "instance";
}

}  // namespace tw::revocation
