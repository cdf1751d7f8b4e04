// Deliberately broken plugins for the loader's tests, one per BROKEN_* macro:
//   BROKEN_ABI      a descriptor of plugin ABI version 2
//   BROKEN_INIT     an entry point that refuses to initialize (returns NULL)
//   BROKEN_TABLE    a transport table missing a function
//   BROKEN_NAME     a descriptor naming another plugin than its file
//   (no macro)      no entry symbol at all
#include <ferry/plugin/transport.h>

#if defined(BROKEN_ABI) || defined(BROKEN_TABLE) || defined(BROKEN_NAME) || defined(BROKEN_INIT)

namespace {

int fakeCreate(const ferry_host_v1*, uv_loop_t*, const ferry_transport_events_v1*, ferry_transport**) {
  return -1;
}
void fakeDestroy(ferry_transport*, void (*done)(void*), void* arg) { done(arg); }
int fakeListen(ferry_transport*, const char*, const char*, char*, size_t) { return -1; }
int fakeConnect(ferry_transport*, const char*, const char*, uint32_t, ferry_conn_id*) { return -1; }
[[maybe_unused]] int fakeSend(ferry_transport*, ferry_conn_id, const uint8_t*, size_t) { return -1; }
void fakeClose(ferry_transport*, ferry_conn_id) {}
int fakeCheck(const char*, const char*) { return -1; }
const char* fakeStrerror(int) { return "broken"; }

const ferry_transport_v1 kTable = {
    sizeof(ferry_transport_v1), FERRY_PLUGIN_ABI_VERSION, 1 << 20, &fakeCreate, &fakeDestroy,
    &fakeListen, &fakeConnect,
#ifdef BROKEN_TABLE
    nullptr,
#else
    &fakeSend,
#endif
    &fakeClose, &fakeCheck, &fakeStrerror, nullptr, nullptr,
    /* capabilities: a network stream transport */ 0, /* cost_rank */ 300, nullptr, nullptr,
    nullptr, nullptr, /* receive_any_thread */ nullptr};

[[maybe_unused]] const ferry_plugin_v1 kDescriptor = {
    sizeof(ferry_plugin_v1),
#ifdef BROKEN_ABI
    2,
#else
    FERRY_PLUGIN_ABI_VERSION,
#endif
    FERRY_PLUGIN_TRANSPORT,
#ifdef BROKEN_NAME
    "somethingelse",
#else
    PLUGIN_NAME,
#endif
    "a deliberately broken plugin", &kTable};

}  // namespace

extern "C" const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1*) {
#ifdef BROKEN_INIT
  return nullptr;
#else
  return &kDescriptor;
#endif
}

#else
extern "C" int ferry_not_the_entry_point() { return 0; }
#endif
