//! `green-certificates`: green-electricity certificates, one per verified MWh.
//!
//! * A generation record is `(producer, period, kWh, source)`; `period` is an id the channel
//!   agrees on (e.g. `yyyymm`, or an hour index). An **issuer** (role `issuer`, by
//!   `issue`) or a **meter** (role `meter`, by `attest_generation`) submits it; the contract
//!   converts the kWh to whole MWh through the `energy-units` library (`whole_mwh`, rounded
//!   down: the fraction of a MWh is not certified) and mints that many certificates to the
//!   producer, with consecutive ids. A `(producer, period)` record is accepted once: a
//!   second submission is refused (no double issuance).
//! * A certificate is non-fungible (its id), owned, transferable by its owner, and
//!   **retired** by its owner for a beneficiary: once retired it can never be transferred
//!   or retired again (no double counting).
//! * The owner of the contract grants and revokes `issuer` and `meter`, and pauses.
//! * Events: [`Issued`], [`CertificateTransferred`], [`Retired`].

use energy_units::EnergyUnitsLib;
use joule_contract_std::prelude::*;

/// The roles the owner grants.
pub const ROLES: [&str; 2] = ["issuer", "meter"];
/// Most certificates one record issues (bounds the gas of a call).
pub const MAX_PER_RECORD: u64 = 1000;
/// Most entries a paged query returns.
pub const MAX_PAGE: u32 = 100;
/// Most bytes of a beneficiary.
pub const MAX_BENEFICIARY: usize = 128;

/// Where the electricity came from.
#[contract_type]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Solar,
    Wind,
    Hydro,
    Biomass,
    Geothermal,
}

/// Who retired a certificate, for whom, when.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retirement {
    pub by: Address,
    pub beneficiary: String,
    pub height: u64,
}

/// One certified MWh.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub id: u64,
    pub producer: Address,
    pub period: u64,
    pub source: Source,
    pub owner: Address,
    pub issued_at: u64,
    pub retired: Option<Retirement>,
}

/// Certificates `first_id .. first_id + count` were issued to `producer` for `period`.
#[event]
pub struct Issued {
    #[indexed]
    pub producer: Address,
    #[indexed]
    pub period: u64,
    pub first_id: u64,
    pub count: u64,
    pub source: Source,
    pub issuer: Address,
}

/// Certificate `id` changed hands.
#[event]
pub struct CertificateTransferred {
    #[indexed]
    pub id: u64,
    #[indexed]
    pub from: Address,
    #[indexed]
    pub to: Address,
}

/// Certificate `id` was retired for `beneficiary`.
#[event]
pub struct Retired {
    #[indexed]
    pub id: u64,
    #[indexed]
    pub owner: Address,
    pub beneficiary: String,
}

/// The contract's state.
#[derive(ContractState)]
pub struct GreenCertificates {
    owner: Ownable,
    roles: Roles,
    paused: Pausable,
    units: Value<Address>,
    certificates: Map<u64, Certificate>,
    /// `(owner, id)` for the certificates an account holds (retired ones included).
    by_owner: Map<(Address, u64), bool>,
    /// `(producer, period)` → `(first_id, count)`: the records already certified.
    records: Map<(Address, u64), (u64, u64)>,
    next_id: Value<u64>,
    issued: Value<u64>,
    retired: Value<u64>,
}

impl GreenCertificates {
    fn certify(
        &mut self,
        producer: Address,
        period: u64,
        energy_kwh: Decimal,
        source: Source,
    ) -> Result<(u64, u64), String> {
        self.paused.require_not_paused();
        let key = (producer, period);
        if self.records.contains(&key) {
            return Err(format!(
                "generation of period {period} by {producer} is already certified"
            ));
        }
        let units = EnergyUnitsLib::new(self.units.expect("not initialized"));
        let (count, _rest_kwh) = units.whole_mwh(energy_kwh).map_err(|e| e.to_string())?;
        if count == 0 {
            return Err(format!("{energy_kwh} kWh is less than 1 MWh"));
        }
        if count > MAX_PER_RECORD {
            return Err(format!("{count} MWh in one record: at most {MAX_PER_RECORD}"));
        }
        let first_id = self.next_id.get_or(0) + 1;
        let height = env::height();
        for id in first_id..first_id + count {
            self.certificates.insert(
                &id,
                &Certificate {
                    id,
                    producer,
                    period,
                    source,
                    owner: producer,
                    issued_at: height,
                    retired: None,
                },
            );
            self.by_owner.insert(&(producer, id), &true);
        }
        self.next_id.set(&(first_id + count - 1));
        self.issued.set(&(self.issued.get_or(0) + count));
        self.records.insert(&key, &(first_id, count));
        Issued {
            producer,
            period,
            first_id,
            count,
            source,
            issuer: env::caller(),
        }
        .emit();
        Ok((first_id, count))
    }

    /// The caller's live (not retired) certificate `id`.
    fn owned_live(&self, id: u64) -> Result<Certificate, String> {
        let cert = self
            .certificates
            .get(&id)
            .ok_or_else(|| format!("no certificate {id}"))?;
        if cert.retired.is_some() {
            return Err(format!("certificate {id} is retired"));
        }
        if cert.owner != env::caller() {
            return Err(format!("certificate {id} is not the caller's"));
        }
        Ok(cert)
    }
}

#[contract]
impl GreenCertificates {
    /// Deploy with the address of the `energy-units` library; the caller becomes the owner.
    #[init]
    pub fn new(units: Address) -> Self {
        let contract = Self::default();
        contract.owner.init(env::caller());
        contract.units.set(&units);
        contract
    }

    /// Give `role` (`issuer` or `meter`) to `account`.
    #[guard(owner)]
    pub fn grant_role(&mut self, role: String, account: Address) -> Result<(), String> {
        if !ROLES.contains(&role.as_str()) {
            return Err(format!("unknown role {role}: one of {ROLES:?}"));
        }
        self.roles.grant(&role, account);
        Ok(())
    }

    #[guard(owner)]
    pub fn revoke_role(&mut self, role: String, account: Address) {
        self.roles.revoke(&role, account);
    }

    #[guard(owner)]
    pub fn pause(&mut self) {
        self.paused.pause();
    }

    #[guard(owner)]
    pub fn unpause(&mut self) {
        self.paused.unpause();
    }

    /// An issuer certifies a generation record: one certificate per whole MWh of
    /// `energy_kwh`, to `producer`. Returns `(first_id, count)`.
    #[guard(role = "issuer")]
    pub fn issue(
        &mut self,
        producer: Address,
        period: u64,
        energy_kwh: Decimal,
        source: Source,
    ) -> Result<(u64, u64), String> {
        self.certify(producer, period, energy_kwh, source)
    }

    /// A meter attests a generation record, certified as by `issue`.
    #[guard(role = "meter")]
    pub fn attest_generation(
        &mut self,
        producer: Address,
        period: u64,
        energy_kwh: Decimal,
        source: Source,
    ) -> Result<(u64, u64), String> {
        self.certify(producer, period, energy_kwh, source)
    }

    /// Give certificate `id` (the caller's, not retired) to `to`.
    #[guard(not_paused)]
    pub fn transfer(&mut self, id: u64, to: Address) -> Result<(), String> {
        let mut cert = self.owned_live(id)?;
        let from = cert.owner;
        if to == Address::ZERO || to == from {
            return Err("transfer to the zero address or to oneself".into());
        }
        cert.owner = to;
        self.certificates.insert(&id, &cert);
        self.by_owner.remove(&(from, id));
        self.by_owner.insert(&(to, id), &true);
        CertificateTransferred { id, from, to }.emit();
        Ok(())
    }

    /// Retire certificate `id` (the caller's) for `beneficiary`: final.
    #[guard(not_paused)]
    pub fn retire(&mut self, id: u64, beneficiary: String) -> Result<(), String> {
        let mut cert = self.owned_live(id)?;
        if beneficiary.is_empty() || beneficiary.len() > MAX_BENEFICIARY {
            return Err(format!("a beneficiary is 1 to {MAX_BENEFICIARY} bytes"));
        }
        cert.retired = Some(Retirement {
            by: cert.owner,
            beneficiary: beneficiary.clone(),
            height: env::height(),
        });
        self.certificates.insert(&id, &cert);
        self.retired.set(&(self.retired.get_or(0) + 1));
        Retired {
            id,
            owner: cert.owner,
            beneficiary,
        }
        .emit();
        Ok(())
    }

    pub fn certificate(&self, id: u64) -> Option<Certificate> {
        self.certificates.get(&id)
    }

    /// The certificates of `owner` after id `after`, at most `limit` (≤ 100), by id.
    pub fn certificates_of(&self, owner: Address, after: Option<u64>, limit: u32) -> Vec<Certificate> {
        let limit = limit.min(MAX_PAGE) as usize;
        let ids: Vec<u64> = match after {
            Some(id) => self
                .by_owner
                .iter_from(&(owner, id))
                .take_while(|((o, _), _)| *o == owner)
                .take(limit)
                .map(|((_, id), _)| id)
                .collect(),
            None => self
                .by_owner
                .prefix_iter(&owner)
                .take(limit)
                .map(|((_, id), _)| id)
                .collect(),
        };
        ids.into_iter().filter_map(|id| self.certificates.get(&id)).collect()
    }

    /// The certificates of a `(producer, period)` record: `(first_id, count)`.
    pub fn record(&self, producer: Address, period: u64) -> Option<(u64, u64)> {
        self.records.get(&(producer, period))
    }

    /// `(issued, retired)` certificates in total.
    pub fn totals(&self) -> (u64, u64) {
        (self.issued.get_or(0), self.retired.get_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use energy_units::EnergyUnits;
    use joule_contract_std::testing::{self, account};

    const UNITS: Address = Address([0x71; 32]);
    const OWNER: u8 = 1;
    const ISSUER: u8 = 2;
    const PRODUCER: u8 = 3;
    const BUYER: u8 = 4;
    const METER: u8 = 5;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn call<R: BorshDeserialize>(method: &str, args: &impl BorshSerialize) -> Result<R, String> {
        testing::call::<GreenCertificates, _, R>(method, args)
    }

    fn query<R: BorshDeserialize>(method: &str, args: &impl BorshSerialize) -> R {
        testing::query::<GreenCertificates, _, R>(method, args).unwrap()
    }

    fn setup() {
        testing::reset();
        testing::register_contract::<EnergyUnits>(UNITS);
        testing::set_caller(account(OWNER));
        testing::init::<GreenCertificates, _>(&(UNITS,)).unwrap();
        call::<()>("grant_role", &("issuer".to_string(), account(ISSUER))).unwrap();
        call::<()>("grant_role", &("meter".to_string(), account(METER))).unwrap();
    }

    fn issue(period: u64, kwh: &str) -> Result<(u64, u64), String> {
        testing::set_caller(account(ISSUER));
        call("issue", &(account(PRODUCER), period, d(kwh), Source::Wind))
    }

    fn owned_ids(who: u8, after: Option<u64>, limit: u32) -> Vec<u64> {
        query::<Vec<Certificate>>("certificates_of", &(account(who), after, limit))
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn issue_one_per_whole_mwh() {
        setup();
        assert_eq!(issue(202506, "3500").unwrap(), (1, 3));
        let cert = query::<Option<Certificate>>("certificate", &(2u64,)).unwrap();
        assert_eq!(
            (cert.owner, cert.period, cert.source),
            (account(PRODUCER), 202506, Source::Wind)
        );
        assert_eq!(query::<(u64, u64)>("totals", &()), (3, 0));
        assert_eq!(
            query::<Option<(u64, u64)>>("record", &(account(PRODUCER), 202506u64)),
            Some((1, 3))
        );
        let issued = testing::events().into_iter().find(|e| e.name == "Issued").unwrap();
        assert!(issued.is(&Issued {
            producer: account(PRODUCER),
            period: 202506,
            first_id: 1,
            count: 3,
            source: Source::Wind,
            issuer: account(ISSUER)
        }));
        assert_eq!(issue(202507, "999.9").unwrap_err(), "999.9 kWh is less than 1 MWh");
        // A meter attestation certifies too; others may not.
        testing::set_caller(account(METER));
        let got: (u64, u64) = call(
            "attest_generation",
            &(account(PRODUCER), 202508u64, d("1000"), Source::Solar),
        )
        .unwrap();
        assert_eq!(got, (4, 1));
        testing::set_caller(account(BUYER));
        assert_eq!(
            call::<(u64, u64)>("issue", &(account(BUYER), 1u64, d("5000"), Source::Solar)).unwrap_err(),
            "caller lacks role issuer"
        );
    }

    #[test]
    fn double_issue_is_refused() {
        setup();
        issue(202506, "2000").unwrap();
        let err = issue(202506, "2000").unwrap_err();
        assert!(err.contains("is already certified"), "{err}");
        // Through the meter path as well.
        testing::set_caller(account(METER));
        assert!(
            call::<(u64, u64)>(
                "attest_generation",
                &(account(PRODUCER), 202506u64, d("1000"), Source::Wind)
            )
            .is_err()
        );
        assert_eq!(query::<(u64, u64)>("totals", &()), (2, 0));
    }

    #[test]
    fn transfer_and_paging() {
        setup();
        issue(1, "5000").unwrap();
        testing::set_caller(account(BUYER));
        assert_eq!(
            call::<()>("transfer", &(1u64, account(BUYER))).unwrap_err(),
            "certificate 1 is not the caller's"
        );
        testing::set_caller(account(PRODUCER));
        call::<()>("transfer", &(2u64, account(BUYER))).unwrap();
        call::<()>("transfer", &(4u64, account(BUYER))).unwrap();
        assert!(testing::events().iter().any(|e| e.is(&CertificateTransferred {
            id: 2,
            from: account(PRODUCER),
            to: account(BUYER)
        })));
        assert_eq!(owned_ids(BUYER, None, 10), [2, 4]);
        assert_eq!(owned_ids(PRODUCER, None, 2), [1, 3]);
        assert_eq!(owned_ids(PRODUCER, Some(3), 2), [5]);
        assert_eq!(owned_ids(PRODUCER, Some(5), 2), Vec::<u64>::new());
        assert_eq!(owned_ids(BUYER, Some(2), 10), [4]);
        assert_eq!(owned_ids(ISSUER, None, 10), Vec::<u64>::new());
        assert_eq!(
            call::<()>("transfer", &(9u64, account(BUYER))).unwrap_err(),
            "no certificate 9"
        );
    }

    #[test]
    fn retire_is_final() {
        setup();
        issue(1, "2000").unwrap();
        testing::set_caller(account(PRODUCER));
        call::<()>("transfer", &(1u64, account(BUYER))).unwrap();
        testing::set_caller(account(BUYER));
        assert!(call::<()>("retire", &(1u64, String::new())).is_err());
        call::<()>("retire", &(1u64, "ACME Corp 2025".to_string())).unwrap();
        let cert = query::<Option<Certificate>>("certificate", &(1u64,)).unwrap();
        assert_eq!(cert.retired.unwrap().beneficiary, "ACME Corp 2025");
        assert!(testing::events().iter().any(|e| e.is(&Retired {
            id: 1,
            owner: account(BUYER),
            beneficiary: "ACME Corp 2025".into()
        })));
        // Neither transferred nor retired again.
        assert_eq!(
            call::<()>("transfer", &(1u64, account(PRODUCER))).unwrap_err(),
            "certificate 1 is retired"
        );
        assert_eq!(
            call::<()>("retire", &(1u64, "again".to_string())).unwrap_err(),
            "certificate 1 is retired"
        );
        // Another's certificate cannot be retired.
        assert_eq!(
            call::<()>("retire", &(2u64, "x".to_string())).unwrap_err(),
            "certificate 2 is not the caller's"
        );
        assert_eq!(query::<(u64, u64)>("totals", &()), (2, 1));
    }

    #[test]
    fn pause_and_roles() {
        setup();
        issue(1, "1000").unwrap();
        testing::set_caller(account(OWNER));
        assert!(call::<()>("grant_role", &("arbiter".to_string(), account(9))).is_err());
        call::<()>("pause", &()).unwrap();
        assert_eq!(issue(2, "1000").unwrap_err(), "contract is paused");
        testing::set_caller(account(PRODUCER));
        assert_eq!(
            call::<()>("retire", &(1u64, "x".to_string())).unwrap_err(),
            "contract is paused"
        );
        testing::set_caller(account(OWNER));
        call::<()>("unpause", &()).unwrap();
        call::<()>("revoke_role", &("issuer".to_string(), account(ISSUER))).unwrap();
        assert_eq!(issue(2, "1000").unwrap_err(), "caller lacks role issuer");
    }
}
