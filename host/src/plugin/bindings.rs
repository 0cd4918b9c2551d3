//! Host-side bindings generated from the WIT packages in `wit/`.

/// `joule:crypto/plugin@0.1.0`.
pub mod crypto {
    wasmtime::component::bindgen!({
        path: "../wit/crypto",
        world: "plugin",
        imports: { default: trappable },
    });
}

/// `joule:consensus/engine-plugin@0.1.0`.
pub mod consensus {
    wasmtime::component::bindgen!({
        path: "../wit/consensus",
        world: "engine-plugin",
        imports: { default: trappable },
    });
}
