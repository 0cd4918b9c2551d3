//! The mock's checkpoints: undo journals, nested like the host's.

use super::mock::{self, with};
use super::{account, events, reset, set_contract, storage_of, transact};
use crate::storage::raw;

fn get(key: &[u8]) -> Option<Vec<u8>> {
    raw::get(key)
}

fn fail() -> Result<Vec<u8>, String> {
    Err("no".into())
}

fn journal_is_closed() -> bool {
    with(|m| m.open_checkpoints() == 0 && m.journalled() == 0)
}

#[test]
fn an_outer_failure_undoes_committed_inner_writes_and_events() {
    reset();
    raw::set(b"a", b"0");
    raw::set(b"c", b"keep");
    mock::emit("before", &[], b"");
    let result = transact(|| {
        raw::set(b"a", b"1");
        mock::emit("outer", &[], b"");
        transact(|| {
            raw::set(b"a", b"2");
            raw::set(b"b", b"1");
            raw::remove(b"c");
            raw::remove(b"missing");
            mock::emit("inner", &[], b"");
            Ok(Vec::new())
        })?;
        assert_eq!(get(b"a").as_deref(), Some(&b"2"[..]));
        assert_eq!(get(b"c"), None);
        fail()
    });
    assert_eq!(result, Err("no".into()));
    assert_eq!(get(b"a").as_deref(), Some(&b"0"[..]));
    assert_eq!(get(b"b"), None);
    assert_eq!(get(b"c").as_deref(), Some(&b"keep"[..]));
    assert_eq!(events().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["before"]);
    assert!(journal_is_closed());
}

#[test]
fn an_inner_failure_undoes_only_its_own_writes() {
    reset();
    let other = account(0x42);
    let result = transact(|| {
        raw::set(b"a", b"1");
        mock::emit("outer", &[], b"");
        let inner = transact(|| {
            raw::set(b"a", b"2");
            set_contract(other);
            raw::set(b"x", b"1");
            set_contract(super::DEFAULT_CONTRACT);
            mock::emit("inner", &[], b"");
            panic!("boom")
        });
        assert_eq!(inner, Err("panic: boom".into()));
        raw::set(b"b", b"1");
        Ok(Vec::new())
    });
    assert_eq!(result, Ok(Vec::new()));
    assert_eq!(get(b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(b"b").as_deref(), Some(&b"1"[..]));
    assert!(storage_of(&other).is_empty());
    assert_eq!(events().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["outer"]);
    assert!(journal_is_closed());
}

#[test]
fn a_revert_restores_other_contracts_storage() {
    reset();
    let other = account(0x42);
    set_contract(other);
    raw::set(b"x", b"0");
    set_contract(super::DEFAULT_CONTRACT);
    let result = transact(|| {
        set_contract(other);
        raw::set(b"x", b"1");
        raw::set(b"y", b"1");
        set_contract(super::DEFAULT_CONTRACT);
        raw::set(b"a", b"1");
        fail()
    });
    assert!(result.is_err());
    assert_eq!(
        storage_of(&other).into_iter().collect::<Vec<_>>(),
        [(b"x".to_vec(), b"0".to_vec())]
    );
    assert!(storage_of(&super::DEFAULT_CONTRACT).is_empty());
    assert!(journal_is_closed());
}

#[test]
fn writes_outside_a_transaction_are_not_journalled() {
    reset();
    raw::set(b"a", b"1");
    raw::remove(b"a");
    transact(|| {
        raw::set(b"a", b"2");
        Ok(Vec::new())
    })
    .unwrap();
    assert!(journal_is_closed());
    assert_eq!(get(b"a").as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_reset_inside_a_failed_transaction_is_undone_too() {
    reset();
    raw::set(b"a", b"0");
    let result = transact(|| {
        raw::set(b"a", b"1");
        raw::set(b"b", b"1");
        reset();
        raw::set(b"c", b"1");
        fail()
    });
    assert!(result.is_err());
    assert_eq!(
        storage_of(&super::DEFAULT_CONTRACT).into_iter().collect::<Vec<_>>(),
        [(b"a".to_vec(), b"0".to_vec())]
    );
    assert!(journal_is_closed());
}
