//! Host-side bindings of `joule:crypto@0.1.1` (`wit/crypto`): the `baseline` world every
//! crypto plugin exports, and the optional `key-agreement` export (since 0.1.1), looked up
//! on its own so a plugin built against 0.1.0 still loads.

wasmtime::component::bindgen!({
    path: "../../wit/crypto",
    world: "baseline",
    imports: { default: trappable },
});

/// The `key-agreement` export alone.
pub mod key_agreement {
    wasmtime::component::bindgen!({
        path: "../../wit/crypto",
        world: "key-agreement-provider",
        with: { "joule:crypto/types": crate::bindings::joule::crypto::types },
    });
}
