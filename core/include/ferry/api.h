// FERRY_API marks what libferry exports.
//
// libferry is built with -fvisibility=hidden: a function, class or variable is in its dynamic
// symbol table only when its declaration in a header under core/include/ferry/ carries FERRY_API
// (on a class: its members, vtable and typeinfo). Everything else is internal and cannot be
// linked against from outside the library. Names in `ferry::detail` that carry it are there for
// the inline code of these headers and for the code capnpc-ferry generates, not for hand-written
// code. tests/install/exported-symbols.sh checks the library's table against this rule.
#pragma once

#define FERRY_API __attribute__((visibility("default")))
