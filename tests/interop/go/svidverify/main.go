// Command svidverify verifies an X.509-SVID chain with nothing but Go's standard library,
// following the steps of go-spiffe v2's x509svid.Verify (SPIFFE.md §2.2):
//
//  1. the chain is non-empty; certs[0] is the leaf, the rest are untrusted intermediates;
//  2. the leaf has exactly one URI SAN, and it is a SPIFFE ID (scheme spiffe);
//  3. the leaf is not a CA, has digitalSignature and has neither keyCertSign nor cRLSign;
//  4. crypto/x509 path validation to a root of the bundle, EKU not enforced (ExtKeyUsageAny);
//  5. optionally, the SPIFFE ID is in the expected trust domain.
//
// Usage: svidverify -bundle BUNDLE.pem -chain CHAIN.pem [-trust-domain TD] [-at RFC3339]
//
// On success it prints the SPIFFE ID, then one line saying whether TrustWarden's private
// extension was among the leaf's parsed extensions, and exits 0. On failure it prints the
// error on stderr and exits 1.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// TrustWarden's attribute extension (DESIGN.md "Identity model").
const twExtensionOID = "1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1"

func main() {
	bundlePath := flag.String("bundle", "", "PEM file of the trust domain's X.509 authorities")
	chainPath := flag.String("chain", "", "PEM file: leaf first, then intermediates")
	trustDomain := flag.String("trust-domain", "", "expected trust domain of the SPIFFE ID")
	at := flag.String("at", "", "verify as of this RFC 3339 time instead of now")
	flag.Parse()
	if *bundlePath == "" || *chainPath == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	id, leaf, err := run(*bundlePath, *chainPath, *trustDomain, *at)
	if err != nil {
		fmt.Fprintln(os.Stderr, "svidverify:", err)
		os.Exit(1)
	}
	fmt.Println(id)
	fmt.Printf("extension %s: %s\n", twExtensionOID, extensionState(leaf))
}

func run(bundlePath, chainPath, trustDomain, at string) (string, *x509.Certificate, error) {
	chain, err := readCerts(chainPath)
	if err != nil {
		return "", nil, err
	}
	roots, err := readCerts(bundlePath)
	if err != nil {
		return "", nil, err
	}
	var now time.Time // zero: crypto/x509 uses the current time
	if at != "" {
		if now, err = time.Parse(time.RFC3339, at); err != nil {
			return "", nil, fmt.Errorf("bad -at: %v", err)
		}
	}
	id, err := verify(chain, roots, now)
	if err != nil {
		return "", nil, err
	}
	if trustDomain != "" && id.Host != trustDomain {
		return "", nil, fmt.Errorf("SPIFFE ID %q is not a member of trust domain %q", id, trustDomain)
	}
	return id.String(), chain[0], nil
}

// verify is the x509svid.Verify sequence; it returns the leaf's SPIFFE ID.
func verify(chain, roots []*x509.Certificate, now time.Time) (*url.URL, error) {
	if len(chain) == 0 {
		return nil, errors.New("empty certificates chain")
	}
	leaf := chain[0]
	if len(leaf.URIs) != 1 {
		return nil, fmt.Errorf("leaf certificate must have exactly one URI SAN, has %d", len(leaf.URIs))
	}
	id := leaf.URIs[0]
	if err := checkSPIFFEID(id); err != nil {
		return nil, fmt.Errorf("leaf URI SAN %q: %v", id, err)
	}
	switch {
	case leaf.IsCA:
		return nil, errors.New("leaf certificate must not have CA flag set to true")
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return nil, errors.New("leaf certificate must have 'digitalSignature' set as key usage")
	case leaf.KeyUsage&x509.KeyUsageCertSign != 0:
		return nil, errors.New("leaf certificate must not have 'keyCertSign' set as key usage")
	case leaf.KeyUsage&x509.KeyUsageCRLSign != 0:
		return nil, errors.New("leaf certificate must not have 'cRLSign' set as key usage")
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime:   now,
	}
	for _, root := range roots {
		opts.Roots.AddCert(root)
	}
	for _, intermediate := range chain[1:] {
		opts.Intermediates.AddCert(intermediate)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("could not get leaf chains: %v", err)
	}
	return id, nil
}

// checkSPIFFEID applies the SPIFFE ID rules (SPIFFE-ID.md §2) to a parsed URI.
func checkSPIFFEID(u *url.URL) error {
	switch {
	case u.Scheme != "spiffe":
		return errors.New("scheme is not spiffe")
	case u.Opaque != "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "":
		return errors.New("only a trust domain and a path are allowed")
	case u.Host == "" || strings.Trim(u.Host, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "":
		return errors.New("trust domain is empty or has characters other than [a-z0-9.-_]")
	case u.Path == "" || u.Path == "/":
		return errors.New("path is empty: a leaf identifies a workload, not a trust domain")
	}
	for _, seg := range strings.Split(u.Path[1:], "/") {
		if seg == "" || seg == "." || seg == ".." ||
			strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" {
			return fmt.Errorf("bad path segment %q", seg)
		}
	}
	return nil
}

func extensionState(cert *x509.Certificate) string {
	for _, ext := range cert.Extensions {
		if ext.Id.String() == twExtensionOID {
			return fmt.Sprintf("present (critical=%t)", ext.Critical)
		}
	}
	return "absent"
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE block", path)
	}
	return certs, nil
}
