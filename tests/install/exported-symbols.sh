#!/bin/sh
# Checks libferry's dynamic symbol table against the export rule of core/include/ferry/api.h:
# the library exports its public API and, of the names in ferry::detail, only those the inline
# code of the public headers and the code capnpc-ferry generates link against. Core's internals
# (the export and import tables, apartments, the transport hub, the wire schema's code...) stay
# inside the library.
#
# Usage: exported-symbols.sh <libferry.so>
# Prints the offending symbols and exits 1 when the table breaks the rule.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 <libferry.so>" >&2
    exit 2
fi
library=$1

# What may be exported from ferry::detail, and why: the public header that calls it inline, or the
# generated code that does.
allowed='
ClientCall              generated.h: proxies build and send requests through it
ClientResponse          generated.h: proxies read responses through it
ServerCall              generated.h: stubs read params and build results through it
ProxyBase               generated.h: the base class of every generated proxy
InterfaceRegistration   generated.h: each generated .ferry.c++ registers its interfaces
ApplicationErrorRegistration  application-error.h: each generated .ferry.c++ registers its $Ferry.exception classes
asProxy                 generated.h: generated queryInterface support
unknownMethod           generated.h: generated stubs reject a method id they do not know
throwError              error.h: FERRY_REQUIRE, FERRY_FAIL and FERRY_ASSERT, inline
failUv                  error.h: FERRY_UV, inline
throwNoInterface        object.h: queryInterface<T>, inline
queryInterfacesErased   object.h: queryInterfaces<T...>, inline
liveServants            object.h: Implements<...> counts servants, inline
unmarshalInterfaceErased  marshal.h: unmarshalInterface<T>, inline
bindErased              naming.h: bind<T>, inline
createInstanceErased    activation.h: createInstance<T>, inline
waitPendingCall         future.h: Future::get, inline
cancelPendingCall       future.h: Future::cancel, inline
onPendingCallDone       future.h: Future::then, inline
postToCurrentApartment  future.h: Future::then on a ready future, inline
currentExceptionAsError future.h: Future and runNow turn what a call threw into a Result
wrapInterface           capability.h: ferry::capability puts an interface into a struct, inline
unwrapInterface         capability.h: ferry::refOf reads it back, inline
'
allowedNames=$(echo "$allowed" | awk 'NF { print $1 }')

symbols=$(nm -D --defined-only "$library" | awk '{ print $NF }')
if [ -z "$symbols" ]; then
    echo "FAIL: nm found no defined dynamic symbols in $library"
    exit 1
fi

# The public API is there: a few of its entry points.
missing=0
for want in 'ferry::Runtime::Runtime(ferry::RuntimeOptions)' 'ferry::marshalInterface(' \
            'typeinfo for ferry::Error' 'ferry::detail::ClientCall::send()'; do
    if ! echo "$symbols" | c++filt | grep -qF "$want"; then
        echo "FAIL: $library does not export $want"
        missing=1
    fi
done

# Entities whose enclosing namespace is ferry::detail (functions, variables, and the vtables,
# VTTs and typeinfo of classes), as mangled names: a std:: template instantiated over a
# ferry::detail type is std's, not ours.
detail=$(echo "$symbols" | grep -E '^_Z(T[VTISC]|GV)?N5ferry6detail' | c++filt | sort -u || true)
# Each one's name in ferry::detail: "vtable for ferry::detail::ProxyBase" gives ProxyBase.
offending=$(echo "$detail" |
    awk '{ rest = substr($0, index($0, "ferry::detail::") + 15)
           match(rest, /^[A-Za-z_0-9]+/)
           print substr(rest, 1, RLENGTH), $0 }' |
    while read -r name symbol; do
        if ! echo "$allowedNames" | grep -qx "$name"; then echo "$symbol"; fi
    done)

if [ -n "$offending" ]; then
    echo "FAIL: $library exports internals of ferry::detail (mark only the public API FERRY_API):"
    echo "$offending"
    exit 1
fi
if [ "$missing" -ne 0 ]; then exit 1; fi
echo "ok: $(echo "$symbols" | wc -l) exported symbols, $(echo "$detail" | wc -l) of them in" \
    "ferry::detail, all called by generated code or the public headers' inline code"
