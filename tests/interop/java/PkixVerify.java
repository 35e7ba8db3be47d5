// PkixVerify validates an X.509-SVID chain with Java's own PKIX CertPathValidator (the JDK's
// sun.security.provider.certpath), revocation checking disabled, the bundle's certificates as
// trust anchors.
//
// Usage: java PkixVerify BUNDLE.pem CHAIN.pem [RFC3339-TIME]
//
// On success it prints the leaf's URI SANs, then whether TrustWarden's extension OID is among
// the leaf's non-critical extensions, and exits 0; on failure it prints the error and exits 1.
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Date;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

public class PkixVerify {
  static final String TW_EXTENSION_OID =
      "1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1";

  static List<X509Certificate> read(CertificateFactory cf, String path) throws Exception {
    List<X509Certificate> certs = new ArrayList<>();
    try (InputStream in = new FileInputStream(path)) {
      for (Object c : cf.generateCertificates(in)) certs.add((X509Certificate) c);
    }
    if (certs.isEmpty()) throw new IllegalArgumentException(path + ": no certificate");
    return certs;
  }

  public static void main(String[] args) {
    try {
      CertificateFactory cf = CertificateFactory.getInstance("X.509");
      Set<TrustAnchor> anchors = new HashSet<>();
      for (X509Certificate root : read(cf, args[0])) anchors.add(new TrustAnchor(root, null));
      List<X509Certificate> chain = read(cf, args[1]);
      CertPath path = cf.generateCertPath(chain);
      PKIXParameters params = new PKIXParameters(anchors);
      params.setRevocationEnabled(false);
      if (args.length > 2) params.setDate(Date.from(Instant.parse(args[2])));
      CertPathValidator.getInstance("PKIX").validate(path, params);

      X509Certificate leaf = chain.get(0);
      Collection<List<?>> sans = leaf.getSubjectAlternativeNames();
      if (sans != null) {
        for (List<?> san : sans) {
          if ((Integer) san.get(0) == 6) System.out.println("URI " + san.get(1));
        }
      }
      Set<String> nonCritical = leaf.getNonCriticalExtensionOIDs();
      boolean present = nonCritical != null && nonCritical.contains(TW_EXTENSION_OID);
      System.out.println("extension " + TW_EXTENSION_OID + ": "
          + (present ? "present (critical=false)" : "absent"));
    } catch (Exception e) {
      System.err.println("PkixVerify: " + e);
      System.exit(1);
    }
  }
}
