// Test certificates and keys, made at test time with OpenSSL's APIs (no private key is checked
// in), written into a temporary directory that is removed with its files.
#pragma once

#include <string>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace ferry::test {

// A fresh directory under $TMPDIR (or /tmp); removed, with what it holds, when destroyed.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const noexcept { return _path; }
  // Writes `text` to <path>/<name> with `mode`; returns the file's path.
  std::string write(const std::string& name, const std::string& text, unsigned mode = 0600) const;

private:
  std::string _path;
};

// A P-256 key and its certificate, PEM-encoded.
struct Identity {
  std::string certPem;
  std::string keyPem;
};

// What a certificate says beyond its key.
struct CertSpec {
  std::string cn;
  std::string san;       // OpenSSL's subjectAltName syntax, "URI:spiffe://a,DNS:b"; "" for none
  long notBeforeDays = -1;  // relative to now
  long notAfterDays = 30;
};

// A certificate authority for tests.
class TestCa {
public:
  explicit TestCa(const std::string& cn);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& certPem() const noexcept { return _certPem; }
  // A leaf certificate this CA signed.
  Identity issue(const CertSpec& spec) const;

private:
  EVP_PKEY* _key;
  X509* _cert;
  std::string _certPem;
};

// A leaf certificate that signs itself (in no trust store).
Identity selfSigned(const CertSpec& spec);

}  // namespace ferry::test
