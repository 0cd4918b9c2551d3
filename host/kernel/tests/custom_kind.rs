//! The kernel names no plugin kind: a kind that exists only in this test, with its own
//! small WIT world, is registered, and plugins of it are installed, activated,
//! hot-swapped, rolled back, refused and restored with no change to the kernel.

use joule_kernel::trust::TrustPolicy;
use joule_kernel::{Admitted, PluginError, PluginKind, PluginPackage, PluginRegistry, Refusal};
use joule_plugin_manifest::{Manifest, sha256_hex};
use joule_wasm::{ArtifactCache, InstancePool, Limited, Limits, Runtime, StoreLimiter};
use std::sync::Arc;
use wasmtime::component::{Component, Linker};

wasmtime::component::bindgen!({
    inline: r#"
        package test:meter@0.1.0;

        interface reading {
            current: func() -> u32;
        }

        world meter-plugin {
            export reading;
        }
    "#,
    world: "meter-plugin",
});

struct State(StoreLimiter);

impl Limited for State {
    fn limiter(&mut self) -> &mut StoreLimiter {
        &mut self.0
    }
}

/// The linked form of a meter plugin.
struct Meter {
    pool: InstancePool<State, MeterPlugin>,
}

impl Meter {
    fn current(&self) -> u32 {
        self.pool.call(|p, s| p.test_meter_reading().call_current(s)).expect("meter call")
    }
}

/// A kind defined here only: `test:meter/meter-plugin@0.1.0`, class `meter`.
struct MeterKind;

impl PluginKind for MeterKind {
    fn name(&self) -> &str {
        "meter"
    }

    fn world(&self) -> &str {
        "test:meter/meter-plugin@0.1.0"
    }

    fn granted_imports(&self) -> &[&str] {
        &[]
    }

    fn route_classes(&self) -> &[&str] {
        &["meter"]
    }

    fn admit(&self, runtime: &Arc<Runtime>, component: &Component, manifest: &Manifest) -> Result<Admitted, Refusal> {
        let linker: Linker<State> = Linker::new(runtime.engine());
        let pre = linker.instantiate_pre(component).map_err(|e| Refusal::WrongWorld(format!("{e:#}")))?;
        let pre = MeterPluginPre::new(pre).map_err(|e| Refusal::WrongWorld(format!("{e:#}")))?;
        let limits = runtime.limits().clone();
        let meter = Meter { pool: InstancePool::new(runtime.clone(), move || State(StoreLimiter::new(&limits)), move |s| pre.instantiate(s)) };
        // The kind's admission test: a meter that reads zero is broken.
        if meter.current() == 0 {
            return Err(Refusal::SelfTest("meter:main: reads 0".into()));
        }
        Ok(Admitted { routes: manifest.algorithms.clone(), linked: Arc::new(meter) })
    }
}

/// A meter component that always reads `value`; `import` adds an import it asks for.
fn meter_wasm(value: u32, export: &str, import: Option<&str>) -> Vec<u8> {
    let import = import.map(|i| format!(r#"(import "{i}" (instance))"#)).unwrap_or_default();
    wat::parse_str(format!(
        r#"(component
            {import}
            (core module $m (func (export "current") (result i32) i32.const {value}))
            (core instance $i (instantiate $m))
            (func $current (result u32) (canon lift (core func $i "current")))
            (instance $reading (export "current" (func $current)))
            (export "{export}" (instance $reading)))"#
    ))
    .expect("valid component text")
}

fn package(name: &str, kind: &str, version: &str, provides: &str, wasm: Vec<u8>) -> PluginPackage {
    let toml = format!(
        "name = \"{name}\"\nkind = \"{kind}\"\nversion = \"{version}\"\nvendor = \"test\"\nalgorithms = [\"{provides}\"]\nwasm-sha256 = \"{}\"\n",
        sha256_hex(&wasm)
    );
    PluginPackage::from_parts(&toml, wasm).expect("valid manifest")
}

const EXPORT: &str = "test:meter/reading@0.1.0";

fn meter(name: &str, version: &str, value: u32) -> PluginPackage {
    package(name, "meter", version, "meter:main", meter_wasm(value, EXPORT, None))
}

fn registry(store: Option<std::path::PathBuf>) -> PluginRegistry {
    let runtime = Arc::new(Runtime::new(Limits::default()).expect("runtime"));
    PluginRegistry::new(runtime, vec![Arc::new(MeterKind)], ArtifactCache::new(None), TrustPolicy::default(), store)
}

/// What the active `meter:main` reads, if any version serves it.
fn reading(r: &PluginRegistry) -> Option<u32> {
    r.route("meter", "meter", "main").map(|p| p.linked::<Meter>().expect("a meter").current())
}

#[test]
fn a_kind_defined_outside_the_kernel_installs_activates_swaps_and_rolls_back() {
    let r = registry(None);
    r.install(meter("meter-a", "1.0.0", 1)).expect("v1 admitted");
    assert_eq!(reading(&r), None, "installed is not active");
    r.activate("meter-a", None).unwrap();
    assert_eq!(reading(&r), Some(1));

    // Hot swap: a call that took the old version keeps it; new lookups see the new one.
    let held = r.route("meter", "meter", "main").unwrap();
    r.install(meter("meter-a", "2.0.0", 2)).unwrap();
    r.activate("meter-a", Some("2.0.0")).unwrap();
    assert_eq!(reading(&r), Some(2));
    assert_eq!(held.linked::<Meter>().unwrap().current(), 1, "the old version finishes its calls");

    r.rollback("meter-a").unwrap();
    assert_eq!(reading(&r), Some(1), "rollback re-activates the previous version");
    assert!(matches!(r.remove("meter-a", "1.0.0"), Err(PluginError::Active { .. })));
    r.remove("meter-a", "2.0.0").unwrap();

    // Two plugins providing the same route: the one activated later serves it, and
    // deactivating it falls back to the other.
    r.install(meter("meter-b", "1.0.0", 7)).unwrap();
    r.activate("meter-b", None).unwrap();
    assert_eq!(reading(&r), Some(7));
    r.deactivate("meter-b").unwrap();
    assert_eq!(reading(&r), Some(1));
    r.deactivate("meter-a").unwrap();
    assert_eq!(reading(&r), None);

    let summary = r.list();
    assert!(summary.iter().all(|p| p.kind == "meter" && p.algorithms == ["meter:main"]), "{summary:?}");
    let actions: Vec<&str> = r.audit().iter().map(|e| e.action).collect();
    assert_eq!(actions.iter().filter(|a| **a == "install").count(), 3, "{actions:?}");
    assert!(actions.contains(&"rollback") && actions.contains(&"remove"), "{actions:?}");
}

#[test]
fn each_refusal_names_what_is_wrong() {
    let r = registry(None);
    let refused = |p: PluginPackage| r.install(p).expect_err("refused");

    match refused(package("x", "rocket", "1.0.0", "meter:main", meter_wasm(1, EXPORT, None))) {
        PluginError::UnsupportedKind { kind, known } => assert_eq!((kind.as_str(), known.as_str()), ("rocket", "meter")),
        e => panic!("{e}"),
    }
    match refused(package("x", "meter", "1.0.0", "hash:sm3", meter_wasm(1, EXPORT, None))) {
        PluginError::BadManifest { reason, .. } => assert!(reason.contains("a meter plugin cannot provide \"hash:sm3\""), "{reason}"),
        e => panic!("{e}"),
    }
    match refused(package("x", "meter", "1.0.0", "meter:main", meter_wasm(1, EXPORT, Some("wasi:clocks/wall-clock@0.2.0")))) {
        PluginError::ForbiddenImport { import, world, .. } => {
            assert_eq!((import.as_str(), world.as_str()), ("wasi:clocks/wall-clock@0.2.0", "test:meter/meter-plugin@0.1.0"))
        }
        e => panic!("{e}"),
    }
    match refused(package("x", "meter", "1.0.0", "meter:main", meter_wasm(1, "test:meter/reading@9.9.9", None))) {
        PluginError::WrongWorld { .. } => {}
        e => panic!("{e}"),
    }
    match refused(meter("x", "1.0.0", 0)) {
        PluginError::SelfTest { case, .. } => assert_eq!(case, "meter:main: reads 0"),
        e => panic!("{e}"),
    }
}

#[test]
fn the_active_set_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = registry(Some(dir.path().to_path_buf()));
        r.install(meter("meter-a", "1.0.0", 1)).unwrap();
        r.install(meter("meter-a", "2.0.0", 2)).unwrap();
        r.activate("meter-a", Some("1.0.0")).unwrap();
    }
    let r = registry(Some(dir.path().to_path_buf()));
    assert!(r.restore().is_empty());
    assert_eq!(reading(&r), Some(1), "the version that was active, not the highest");
    assert_eq!(r.list().len(), 2);
}

#[test]
fn a_required_route_keeps_its_last_provider_active() {
    let r = registry(None);
    r.install(meter("meter-a", "1.0.0", 1)).unwrap();
    r.install(meter("meter-b", "1.0.0", 7)).unwrap();
    r.activate("meter-a", None).unwrap();
    r.require("channel grid", "meter", "meter", "main");

    match r.deactivate("meter-a") {
        Err(PluginError::InUse { name, route, holder, .. }) => {
            assert_eq!((name.as_str(), route.as_str(), holder.as_str()), ("meter-a", "meter:main", "channel grid"))
        }
        other => panic!("deactivated the last provider: {other:?}"),
    }
    assert_eq!(reading(&r), Some(1), "a refused change changes nothing");
    assert!(matches!(r.remove("meter-a", "1.0.0"), Err(PluginError::InUse { .. })), "removal names what depends on it");
    // A version without the route cannot replace the one that serves it.
    r.install(package("meter-a", "meter", "2.0.0", "meter:other", meter_wasm(3, EXPORT, None))).unwrap();
    assert!(matches!(r.activate("meter-a", Some("2.0.0")), Err(PluginError::InUse { .. })));
    assert_eq!(reading(&r), Some(1));

    // With another provider active, the first may go; then the other is the last.
    r.activate("meter-b", None).unwrap();
    r.deactivate("meter-a").unwrap();
    assert_eq!(reading(&r), Some(7));
    assert!(matches!(r.deactivate("meter-b"), Err(PluginError::InUse { .. })));
    assert!(r.audit().iter().any(|e| e.action == "refuse" && e.detail.contains("channel grid")), "refusals are audited");
}

#[test]
fn a_change_that_cannot_be_saved_is_refused_and_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(Some(dir.path().to_path_buf()));
    r.install(meter("meter-a", "1.0.0", 1)).unwrap();
    r.activate("meter-a", None).unwrap();
    // `active.json` becomes a non-empty directory: writing the new set fails at the rename,
    // as it does on a full disk after the temporary file was created.
    std::fs::remove_file(dir.path().join("active.json")).unwrap();
    std::fs::create_dir(dir.path().join("active.json")).unwrap();
    std::fs::write(dir.path().join("active.json/x"), b"x").unwrap();
    assert!(matches!(r.deactivate("meter-a"), Err(PluginError::Io { .. })));
    assert_eq!(reading(&r), Some(1), "still routed");
    assert!(r.list().iter().all(|p| p.active), "still listed as active");
    // An upload that cannot be stored is not installed, and leaves no half of itself.
    std::fs::create_dir(dir.path().join("meter-a@2.0.0.toml")).unwrap();
    std::fs::write(dir.path().join("meter-a@2.0.0.toml/x"), b"x").unwrap();
    assert!(matches!(r.install(meter("meter-a", "2.0.0", 2)), Err(PluginError::Io { .. })));
    assert_eq!(r.list().len(), 1, "not installed");
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.contains(".tmp") || n == "meter-a@2.0.0.wasm"), "{names:?}");
}
