#include "key-file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "provider.h"
#include "settings.h"

namespace ferry::security::psk {
namespace {

int hexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

PskKey::~PskKey() {
  if (!_key.empty()) OPENSSL_cleanse(_key.data(), _key.size());
}

bool validKeyId(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxKeyIdSize) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::strchr("._@:/+-", c) != nullptr;
    if (!ok) return false;
  }
  return true;
}

std::vector<PskKey> parseKeyFile(const std::string& text, const std::string& where) {
  std::vector<PskKey> keys;
  const std::string hint = "a line is '<id> <key as hex>', as `ferry keygen` writes them";
  forEachPair(text, where, hint, [&](int line, const std::string& id, std::string hex) {
    if (!validKeyId(id)) {
      throw lineFailure(line, where,
                        "has a key id that is not 1 to 128 of the characters A-Z a-z 0-9 . _ @ "
                        ": / + -",
                        hint);
    }
    if (hex.size() % 2 != 0 || hex.size() < 2 * kMinKeySize || hex.size() > 2 * kMaxKeySize) {
      throw lineFailure(line, where,
                        "has a key that is not 64 to 96 hex digits (256 to 384 random bits)", hint);
    }
    std::vector<uint8_t> key(hex.size() / 2);
    for (size_t i = 0; i < key.size(); ++i) {
      int high = hexValue(hex[2 * i]);
      int low = hexValue(hex[2 * i + 1]);
      if (high < 0 || low < 0) {
        OPENSSL_cleanse(key.data(), key.size());
        throw lineFailure(line, where, "has a key that is not hex digits", hint);
      }
      key[i] = static_cast<uint8_t>(high * 16 + low);
    }
    OPENSSL_cleanse(hex.data(), hex.size());
    for (const PskKey& k : keys) {
      if (k.id() == id) throw lineFailure(line, where, "repeats the key id '" + id + "'", hint);
    }
    keys.emplace_back(id, std::move(key));
  });
  if (keys.empty()) throw Failure(kBadCredentials, where + " holds no key");
  return keys;
}

void writeNewKeyFile(const std::string& path, const std::string& id) {
  if (!validKeyId(id)) {
    throw Failure(kBadCredentials, "the key id '" + id.substr(0, 80) +
                                       "' is not 1 to 128 of the characters A-Z a-z 0-9 . _ @ "
                                       ": / + -");
  }
  uint8_t key[kMinKeySize];
  if (RAND_priv_bytes(key, sizeof key) != 1) {
    throw Failure(kInternal, "the random generator failed; no key was written");
  }
  static const char kDigits[] = "0123456789abcdef";
  std::string text = "# ferry pre-shared keys: <id> <key as hex>, one per line; keep this file "
                     "mode 0600\n" + id + " ";
  for (uint8_t b : key) {
    text += kDigits[b >> 4];
    text += kDigits[b & 15];
  }
  text += "\n";
  OPENSSL_cleanse(key, sizeof key);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int error = errno;
    OPENSSL_cleanse(text.data(), text.size());
    throw Failure(kBadCredentials,
                  "cannot create the key file " + path + ": " + std::strerror(error) +
                      (error == EEXIST ? " (keygen never replaces a key file; remove it first or "
                                         "name another)"
                                       : ""));
  }
  // The mode is 0600 whatever the umask, which can only have removed bits.
  bool ok = ::fchmod(fd, 0600) == 0;
  size_t written = 0;
  while (ok && written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) written += static_cast<size_t>(n);
  }
  int error = errno;
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  OPENSSL_cleanse(text.data(), text.size());
  if (!ok) {
    ::unlink(path.c_str());
    throw Failure(kBadCredentials, "cannot write the key file " + path + ": " +
                                       std::strerror(error != 0 ? error : EIO));
  }
}

}  // namespace ferry::security::psk
