# expect: method 'Loader.loadAsync' collides with the async companion 'loadAsync' of 'Loader.load'
# expect-line: 7
@0xa5e0de9b9baa6d7e;

interface Loader {
  load @0 (path :Text) -> (data :Data);
  loadAsync @1 (path :Text) -> ();
}
