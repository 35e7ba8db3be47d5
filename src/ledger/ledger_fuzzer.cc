// libFuzzer: the ledger's parsers (event, entry, export stream and its verifier) never
// crash, and accepted events and entries are their own canonical encoding.
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include "ledger/entry.h"
#include "ledger/event.h"
#include "ledger/export.h"
#include "ledger/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (auto event = tw::ledger::DecodeEvent(input); event.ok()) {
    if (tw::ledger::EncodeEvent(*event) != input) std::abort();
  }
  if (auto entry = tw::ledger::DecodeEntry(tw::base::AsBytes(input)); entry.ok()) {
    if (tw::base::AsChars(tw::ledger::EncodeEntry(*entry)) != input) std::abort();
  }
  // The verifier with the anchors the input's own header names, so that the fuzzer reaches
  // past the header.
  const std::string file = "TWLEDGER1\n" + input;
  std::istringstream first(file);
  tw::ledger::VerifyOptions anchors;
  if (auto record = tw::ledger::ExportReader(first).Next(); record.ok() && record->has_value()) {
    if (const auto* h = std::get_if<tw::ledger::ExportHeader>(&**record)) {
      anchors = {.ledger_key = h->ledger_key, .bundle = h->bundle_json};
    }
  }
  std::istringstream stream(file);
  (void)tw::ledger::VerifyExport(stream, anchors);
  return 0;
}
