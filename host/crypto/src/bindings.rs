//! Host-side bindings of `joule:crypto/plugin@0.1.0` (`wit/crypto`).

wasmtime::component::bindgen!({
    path: "../../wit/crypto",
    world: "plugin",
    imports: { default: trappable },
});
