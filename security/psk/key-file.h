// The psk provider's key files: text, one key per line,
//
//     # ferry pre-shared keys: <id> <key as hex>, one per line; keep this file mode 0600
//     build-17 9f0c…(64 to 96 hex digits)
//
// The id is the principal the key authenticates, sent in clear during the handshake (as TLS 1.3
// PSK identities are). A key is 256 to 384 random bits, never a password: whoever records one
// handshake can test guesses of the key offline. `ferry keygen` writes new files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::security::psk {

inline constexpr size_t kMinKeySize = 32;  // bytes: 256 bits
inline constexpr size_t kMaxKeySize = 48;  // bytes: what an OpenSSL 3.0 session holds
inline constexpr size_t kMaxKeyIdSize = 128;

// A key and its id; the key's bytes are wiped when it is destroyed.
class PskKey {
public:
  PskKey(std::string id, std::vector<uint8_t> key) : _id(std::move(id)), _key(std::move(key)) {}
  ~PskKey();
  PskKey(const PskKey& other) = default;
  PskKey(PskKey&& other) = default;
  PskKey& operator=(const PskKey&) = delete;
  PskKey& operator=(PskKey&&) = delete;

  const std::string& id() const noexcept { return _id; }
  const std::vector<uint8_t>& key() const noexcept { return _key; }

private:
  std::string _id;
  std::vector<uint8_t> _key;
};

// True for 1 to 128 characters of [A-Za-z0-9._@:/+-].
bool validKeyId(std::string_view id) noexcept;

// The keys of a key file's text. Throws Failure(kBadCredentials) naming `where` (the file and
// the setting, e.g. "keys=/etc/ferry/psk of the psk security settings") and the line.
std::vector<PskKey> parseKeyFile(const std::string& text, const std::string& where);

// Creates `path` with mode 0600 holding one new key (RAND_priv_bytes, 256 bits) named `id`.
// Never replaces an existing file. Throws Failure(kBadCredentials) with a sentence.
void writeNewKeyFile(const std::string& path, const std::string& id);

}  // namespace ferry::security::psk
