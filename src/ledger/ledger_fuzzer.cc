// libFuzzer: the ledger's parsers (event, entry, export stream and its verifier) never
// crash, and accepted events and entries are their own canonical encoding.
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include "ledger/entry.h"
#include "ledger/event.h"
#include "ledger/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (auto event = tw::ledger::DecodeEvent(input); event.ok()) {
    if (tw::ledger::EncodeEvent(*event) != input) std::abort();
  }
  if (auto entry = tw::ledger::DecodeEntry(tw::base::AsBytes(input)); entry.ok()) {
    if (tw::base::AsChars(tw::ledger::EncodeEntry(*entry)) != input) std::abort();
  }
  std::istringstream stream("TWLEDGER1\n" + input);
  (void)tw::ledger::VerifyExport(stream);
  return 0;
}
