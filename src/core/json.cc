#include "core/json.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tw::core {
namespace {

using nlohmann::json;

constexpr size_t kMaxDepth = 32;

// A nlohmann SAX consumer that builds the DOM like json::parse does, but refuses
// duplicate member names and deep nesting, and can hand top-level members to a visitor.
class StrictBuilder : public nlohmann::json_sax<json> {
 public:
  explicit StrictBuilder(const JsonMemberVisitor* visit) : visit_(visit) {}

  bool null() override { return Value(json(nullptr)); }
  bool boolean(bool v) override { return Value(json(v)); }
  bool number_integer(number_integer_t v) override { return Value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Value(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return Value(json(v)); }
  bool string(string_t& v) override { return Value(json(std::move(v))); }
  bool binary(binary_t&) override { return Fail("binary values are not JSON"); }

  bool start_object(std::size_t) override { return Open(json::value_t::object); }
  bool start_array(std::size_t) override { return Open(json::value_t::array); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }

  bool key(string_t& name) override {
    if (Visiting()) {
      for (const std::string& seen : top_keys_) {
        if (seen == name) return Duplicate(name);
      }
      top_keys_.push_back(name);
    } else if (stack_.back()->contains(name)) {
      return Duplicate(name);
    }
    keys_.back() = std::move(name);
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return Fail("not valid JSON");
  }

  json& root() { return root_; }
  const absl::Status& status() const { return status_; }
  bool visitor_failed() const { return visitor_failed_; }

 private:
  // True while filling the top-level object whose members go to the visitor.
  bool Visiting() const { return visit_ != nullptr && stack_.size() == 1; }

  bool Fail(absl::string_view why) {
    if (status_.ok()) status_ = absl::InvalidArgumentError(std::string(why));
    return false;
  }
  bool Duplicate(const std::string& name) {
    return Fail(absl::StrCat("duplicate member \"", absl::CHexEscape(name.substr(0, 64)), "\""));
  }

  // Places a complete or freshly opened value where the parser is; returns where it went.
  json* Place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json* parent = stack_.back();
    if (parent->is_array()) {
      parent->push_back(std::move(v));
      return &parent->back();
    }
    if (Visiting()) {
      member_ = std::move(v);
      return &member_;
    }
    return &((*parent)[keys_.back()] = std::move(v));
  }

  // Hands a finished top-level member to the visitor.
  bool Flush() {
    if (!Visiting()) return true;
    absl::Status s = (*visit_)(keys_.back(), std::move(member_));
    if (!s.ok()) {
      status_ = std::move(s);
      visitor_failed_ = true;
      return false;
    }
    return true;
  }

  bool Value(json&& v) {
    if (stack_.empty() && visit_ != nullptr) return Fail("not a JSON object");
    Place(std::move(v));
    return Flush();
  }

  bool Open(json::value_t type) {
    if (stack_.size() >= kMaxDepth) return Fail("nested too deeply");
    if (stack_.empty() && visit_ != nullptr && type != json::value_t::object) {
      return Fail("not a JSON object");
    }
    stack_.push_back(Place(json(type)));
    keys_.emplace_back();
    return true;
  }

  bool Close() {
    stack_.pop_back();
    keys_.pop_back();
    return Flush();
  }

  const JsonMemberVisitor* visit_;
  json root_;
  json member_;                    // the top-level member being built, when visiting
  std::vector<json*> stack_;       // open containers
  std::vector<std::string> keys_;  // the current member name of each open container
  std::vector<std::string> top_keys_;
  absl::Status status_;
  bool visitor_failed_ = false;
};

absl::Status Run(absl::string_view text, absl::string_view what, size_t max_bytes,
                 StrictBuilder* builder) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": larger than ", max_bytes, " bytes"));
  }
  bool ok;
  try {
    ok = json::sax_parse(text.begin(), text.end(), builder);
  } catch (const json::exception&) {
    ok = false;
  }
  if (ok) return absl::OkStatus();
  if (builder->visitor_failed()) return builder->status();
  absl::string_view why = builder->status().ok() ? "not valid JSON" : builder->status().message();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
}

}  // namespace

absl::StatusOr<json> ParseStrictJson(absl::string_view text, absl::string_view what,
                                     size_t max_bytes) {
  StrictBuilder builder(nullptr);
  if (absl::Status s = Run(text, what, max_bytes, &builder); !s.ok()) return s;
  return std::move(builder.root());
}

absl::Status VisitStrictJsonObject(absl::string_view text, absl::string_view what,
                                   const JsonMemberVisitor& visit, size_t max_bytes) {
  StrictBuilder builder(&visit);
  return Run(text, what, max_bytes, &builder);
}

}  // namespace tw::core
