#include "pki.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace ferry::test {
namespace {

void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

EVP_PKEY* newKey() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  require(key != nullptr, "EC key generation");
  return key;
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  require(ext != nullptr, "an X.509 extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` with `spec`, signed by issuerKey (issuer null: by itself).
X509* newCert(EVP_PKEY* key, const CertSpec& spec, bool ca, X509* issuer, EVP_PKEY* issuerKey) {
  X509* cert = X509_new();
  require(cert != nullptr, "X509_new");
  X509_set_version(cert, 2);
  BIGNUM* serial = BN_new();
  BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), spec.notBeforeDays * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert), spec.notAfterDays * 86400);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(issuer != nullptr ? issuer : cert));
  X509_set_pubkey(cert, key);
  X509* signer = issuer != nullptr ? issuer : cert;
  addExtension(cert, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  addExtension(cert, signer, NID_subject_key_identifier, "hash");
  if (ca) addExtension(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!spec.san.empty()) addExtension(cert, signer, NID_subject_alt_name, spec.san);
  require(X509_sign(cert, issuerKey != nullptr ? issuerKey : key, EVP_sha256()) > 0, "signing");
  return cert;
}

std::string pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(size));
  BIO_free(bio);
  return text;
}

std::string pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(size));
  BIO_free(bio);
  return text;
}

// A new key and its certificate with `spec`, signed by `issuer` (null: by itself).
Identity newIdentity(const CertSpec& spec, X509* issuer, EVP_PKEY* issuerKey) {
  EVP_PKEY* key = newKey();
  X509* cert = newCert(key, spec, false, issuer, issuerKey);
  Identity identity{pem(cert), pem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return identity;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                        "/ferry-security-test-XXXXXX";
  require(::mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  _path = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(_path, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& text,
                           unsigned mode) const {
  std::string file = _path + "/" + name;
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    require(static_cast<bool>(out), "writing a test file");
  }
  require(::chmod(file.c_str(), mode) == 0, "chmod");
  return file;
}

TestCa::TestCa(const std::string& cn) : _key(newKey()) {
  _cert = newCert(_key, CertSpec{cn, "", -1, 365}, true, nullptr, nullptr);
  _certPem = pem(_cert);
}

TestCa::~TestCa() {
  X509_free(_cert);
  EVP_PKEY_free(_key);
}

Identity TestCa::issue(const CertSpec& spec) const { return newIdentity(spec, _cert, _key); }

Identity selfSigned(const CertSpec& spec) { return newIdentity(spec, nullptr, nullptr); }

}  // namespace ferry::test
