#include "federation/federation.h"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/x509_verifier.h"
#include "net/https_client.h"

namespace tw::federation {
namespace {

constexpr absl::Duration kDefaultRefresh = absl::Minutes(5);
// Whatever a foreign endpoint's hint says: never polled faster, never forgotten longer.
constexpr absl::Duration kMinRefresh = absl::Seconds(5);
constexpr absl::Duration kMaxRefresh = absl::Hours(24);

// Redirects followed in one fetch before giving up.
constexpr int kMaxRedirects = 3;

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("federation: ", why));
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Where a redirect from `from` leads: an https URL with a host and no userinfo.
absl::StatusOr<boost::urls::url> RedirectTarget(const boost::urls::url& from,
                                                absl::string_view location) {
  const std::string shown = absl::CHexEscape(location.substr(0, 256));
  auto ref =
      boost::urls::parse_uri_reference(boost::core::string_view(location.data(), location.size()));
  boost::urls::url to;
  if (location.empty() || !ref || !boost::urls::resolve(from, *ref, to)) {
    return absl::UnavailableError(absl::StrCat("federation: ", std::string(from.buffer()),
                                               " redirected to \"", shown, "\", not a URL"));
  }
  if (to.scheme() != "https" || to.host().empty() || to.has_userinfo() ||
      (to.has_port() && to.port_number() == 0)) {
    return absl::UnavailableError(
        absl::StrCat("federation: ", std::string(from.buffer()), " redirected to \"", shown,
                     "\", not an https URL with a host, a good port and no userinfo"));
  }
  to.remove_fragment();
  return to;
}

}  // namespace

absl::string_view ProfileName(Profile profile) {
  return profile == Profile::kHttpsWeb ? "https_web" : "https_spiffe";
}

absl::StatusOr<Relationship> MakeRelationship(absl::string_view trust_domain,
                                              absl::string_view endpoint_url,
                                              absl::string_view profile,
                                              absl::string_view endpoint_spiffe_id,
                                              const core::TrustDomain& own) {
  absl::StatusOr<core::TrustDomain> td = core::TrustDomain::FromName(trust_domain);
  if (!td.ok()) return Invalid(td.status().message());
  if (*td == own) return Invalid(absl::StrCat(trust_domain, " is this server's own trust domain"));
  Relationship r{.trust_domain = *std::move(td)};
  auto url = boost::urls::parse_absolute_uri(
      boost::core::string_view(endpoint_url.data(), endpoint_url.size()));
  if (!url || url->scheme() != "https" || url->host().empty()) {
    return Invalid(absl::StrCat("the endpoint URL \"", endpoint_url, "\" is not an https URL"));
  }
  if (url->has_userinfo() || url->has_fragment()) {
    return Invalid("the endpoint URL may carry no userinfo and no fragment");
  }
  if (url->has_port() && (url->port().empty() || url->port_number() == 0)) {
    return Invalid(absl::StrCat("the endpoint URL \"", endpoint_url, "\" has a bad port"));
  }
  r.endpoint_url = std::string(endpoint_url);
  if (profile == "https_web") {
    r.profile = Profile::kHttpsWeb;
    if (!endpoint_spiffe_id.empty()) {
      return Invalid("an https_web endpoint is authenticated by its host name: no SPIFFE ID");
    }
  } else if (profile == "https_spiffe") {
    r.profile = Profile::kHttpsSpiffe;
    if (endpoint_spiffe_id.empty()) {
      return Invalid("an https_spiffe endpoint needs the SPIFFE ID it must present");
    }
    absl::StatusOr<core::SpiffeId> id = core::SpiffeId::FromString(endpoint_spiffe_id);
    if (!id.ok()) return Invalid(id.status().message());
    r.endpoint_spiffe_id = *std::move(id);
  } else {
    return Invalid(absl::StrCat("the profile is https_web or https_spiffe, not \"", profile,
                                "\" (it is never inferred)"));
  }
  return r;
}

absl::StatusOr<core::Bundle> FetchBundle(const Relationship& r, const core::BundleSet& trusted,
                                         absl::Duration timeout) {
  auto parsed = boost::urls::parse_absolute_uri(r.endpoint_url);
  if (!parsed) return Invalid(absl::StrCat("bad endpoint URL ", r.endpoint_url));
  net::ClientOptions options;
  if (r.profile == Profile::kHttpsWeb) {
    options.system_roots = true;
  } else {
    const core::TrustDomain& server_td = r.endpoint_spiffe_id->trust_domain();
    std::shared_ptr<const core::Bundle> roots = trusted.Get(server_td.name());
    if (roots == nullptr || roots->x509_authorities().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("federation: no bundle of ", server_td.name(), " to authenticate ",
                       r.endpoint_spiffe_id->str(), " with (give the first one with --bundle)"));
    }
    options.ca_pem = roots->ToPem();
    auto set = std::make_shared<core::BundleSet>();
    set->Put(*roots);
    const core::SpiffeId expected = *r.endpoint_spiffe_id;
    options.check_peer = [set, expected](const std::vector<base::Bytes>& chain) -> absl::Status {
      std::vector<base::ByteView> presented(chain.begin(), chain.end());
      TW_ASSIGN_OR_RETURN(core::VerifiedX509Svid svid, core::X509Verifier(set).Verify(presented));
      if (svid.spiffe_id != expected) {
        return absl::PermissionDeniedError(
            absl::StrCat("it is ", svid.spiffe_id.str(), ", not ", expected.str()));
      }
      return absl::OkStatus();
    };
  }
  // A redirect is followed with the same checks (https_spiffe: the same SPIFFE ID) and is
  // not remembered: the next fetch starts at the endpoint URL again (Federation §5, §7.5).
  // `timeout` bounds the whole fetch, redirects included.
  const absl::Time deadline = absl::Now() + timeout;
  boost::urls::url url = *parsed;
  net::Response reply;
  for (int redirects = 0;; ++redirects) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("federation: ", r.endpoint_url, ": no bundle within ",
                       absl::FormatDuration(timeout), " (", redirects, " redirects)"));
    }
    options.connect_timeout = options.timeout = left;
    options.server = absl::StrCat("https://", std::string(url.encoded_host_and_port()));
    TW_ASSIGN_OR_RETURN(std::unique_ptr<net::HttpsClient> client,
                        net::HttpsClient::Create(options));
    std::string target = std::string(url.encoded_resource());
    if (target.empty()) target = "/";
    TW_ASSIGN_OR_RETURN(reply, client->Request("GET", target));
    if (!IsRedirect(reply.status)) break;
    if (redirects == kMaxRedirects) {
      return absl::UnavailableError(absl::StrCat(
          "federation: ", r.endpoint_url, " redirected more than ", kMaxRedirects, " times"));
    }
    TW_ASSIGN_OR_RETURN(url, RedirectTarget(url, reply.location));
  }
  if (reply.status != 200) {
    return absl::UnavailableError(
        absl::StrCat("federation: ", std::string(url.buffer()), " answered ", reply.status));
  }
  // A SPIFFE bundle is a JSON object (not the PEM Bundle::Parse also reads).
  const size_t first = reply.body.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || reply.body[first] != '{') {
    return absl::InvalidArgumentError(absl::StrCat("federation: ", std::string(url.buffer()),
                                                   " served no SPIFFE bundle (not JSON)"));
  }
  absl::StatusOr<core::Bundle> bundle = core::Bundle::Parse(reply.body, r.trust_domain);
  if (!bundle.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("federation: ", std::string(url.buffer()),
                     " served no SPIFFE bundle: ", bundle.status().message()));
  }
  if (bundle->x509_authorities().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "federation: the bundle of ", r.trust_domain.name(), " has no X.509 authority"));
  }
  TW_RETURN_IF_ERROR(CheckBoundTo(*bundle, r.trust_domain));
  return bundle;
}

absl::Status CheckBoundTo(const core::Bundle& bundle, const core::TrustDomain& trust_domain) {
  for (const auto& authority : bundle.x509_authorities()) {
    for (absl::string_view uri : authority->certificate.uri_sans()) {
      absl::StatusOr<core::SpiffeId> id = core::SpiffeId::FromString(uri);
      if (id.ok() && id->trust_domain() != trust_domain) {
        return Invalid(absl::StrCat("the bundle given for ", trust_domain.name(),
                                    " holds an authority of ", id->trust_domain().name()));
      }
    }
  }
  return absl::OkStatus();
}

bool Supersedes(const core::Bundle& fetched, const core::Bundle& held) {
  if (fetched.sequence() && held.sequence()) return *fetched.sequence() > *held.sequence();
  return true;
}

absl::Duration RefreshInterval(const core::Bundle* bundle) {
  if (bundle == nullptr || !bundle->refresh_hint_seconds()) return kDefaultRefresh;
  const int64_t hint =
      std::clamp<int64_t>(*bundle->refresh_hint_seconds(), 0, absl::ToInt64Seconds(kMaxRefresh));
  return std::clamp(absl::Seconds(hint), kMinRefresh, kMaxRefresh);
}

}  // namespace tw::federation
