//! The channel's governance state: who its validators and nodes are, and the proposals to
//! change that with the validators' votes (guide §4.2.2 a–b, §5.2.3–5.2.4).
//!
//! Both live in the state tree, as two storage values of a reserved account
//! ([`namespace`]): `members` (Borsh [`Members`]) and `proposals` (Borsh list of
//! [`Proposal`]). So every node counts the same votes, a light client can prove either
//! against a block's state root, and the state of any height says who validated the next
//! block. A chain whose state has no `members` value yet has its genesis members.
//!
//! The rules ([`Governed::apply`]):
//! - only a validator with voting weight may propose, vote or withdraw, signing the
//!   transaction with its validator key;
//! - a vote counts in blocks below its `expires_at`, which must lie after the block and at
//!   most [`MAX_VOTE_BLOCKS`] ahead; voting again replaces one's vote;
//! - after each action, votes that expired or whose voter is no longer a validator are
//!   dropped, and a proposal without votes is closed;
//! - a proposal whose voters hold more than half of the voting weight passes at once: its
//!   changes apply in order, and the votes on the other proposals are counted again under
//!   the new members (which may pass them too). A proposal that would leave the channel
//!   without a voting validator fails and is closed.

use borsh::{BorshDeserialize, BorshSerialize};
use joule_primitives::{ChainCrypto, Change, ChannelId, Governance, Hash32, NodeSpec, ValidatorSpec};
use serde::Serialize;
use std::sync::Arc;

/// The account whose storage holds the governance state: the suite hash of this.
pub const NAMESPACE_PREIMAGE: &[u8] = b"joule-governance/1";
pub const MEMBERS_KEY: &str = "members";
pub const PROPOSALS_KEY: &str = "proposals";
pub const ENGINES_KEY: &str = "engines";
pub const SUITES_KEY: &str = "suites";
/// Open proposals at most: a new one beyond them is refused until some close.
pub const MAX_OPEN_PROPOSALS: usize = 64;
/// How far ahead a vote may expire.
pub const MAX_VOTE_BLOCKS: u64 = 1_000_000;

/// The validators and nodes of the channel.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Members {
    pub validators: Vec<ValidatorSpec>,
    pub nodes: Vec<NodeSpec>,
}

impl Members {
    /// Total weight of the validators.
    pub fn voting_weight(&self) -> u64 {
        self.validators.iter().fold(0u64, |sum, v| sum.saturating_add(v.weight))
    }

    fn weight_of(&self, public_key: &[u8]) -> u64 {
        self.validators.iter().find(|v| v.public_key == public_key).map_or(0, |v| v.weight)
    }

    /// Apply one change. Adding what is there updates it; removing what is absent does
    /// nothing.
    fn apply(&mut self, change: &Change) {
        match change {
            Change::AddValidator { public_key, weight } => match self.validators.iter_mut().find(|v| &v.public_key == public_key) {
                Some(v) => v.weight = *weight,
                None => self.validators.push(ValidatorSpec { public_key: public_key.clone(), weight: *weight }),
            },
            Change::RemoveValidator { public_key } => self.validators.retain(|v| &v.public_key != public_key),
            Change::AddNode { name, network_key } => {
                self.nodes.retain(|n| &n.network_key != network_key && &n.name != name);
                self.nodes.push(NodeSpec { name: name.clone(), network_key: network_key.clone() });
            }
            Change::RemoveNode { network_key } => self.nodes.retain(|n| &n.network_key != network_key),
            // The schedules are not membership: see `Governed::settle`; organisations are
            // the identity records' (`crate::identity`).
            Change::SwitchEngine { .. }
            | Change::SwitchSuite { .. }
            | Change::MoveAccount { .. }
            | Change::AddOrganisation { .. }
            | Change::RemoveOrganisation { .. } => {}
        }
    }
}

/// One validator's vote.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vote {
    /// The validator's public key (SPKI DER).
    #[serde(with = "joule_primitives::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub voter: Vec<u8>,
    /// The vote counts in blocks below this height.
    pub expires_at: u64,
}

/// An open proposal and the votes for it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Proposal {
    pub id: Hash32,
    pub changes: Vec<Change>,
    /// The block that opened it.
    pub proposed_at: u64,
    pub votes: Vec<Vote>,
}

/// What a governance transaction did, for its receipt and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The proposal acted on.
    pub proposal: Hash32,
    /// Proposals that passed (their changes applied), in order.
    pub passed: Vec<Hash32>,
    /// Proposals that passed but could not apply, with why; they are closed.
    pub failed: Vec<(Hash32, String)>,
    /// Accounts the passed proposals move: the account, and the key it moves to (the
    /// executor moves them, in order).
    pub moves: Vec<(Hash32, Vec<u8>)>,
    /// Organisation changes the passed proposals make (the executor applies them, in
    /// order, to the identity records).
    pub organisations: Vec<Change>,
}

/// An engine switch in force from a height on (the chain's engine schedule).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineActivation {
    pub from_height: u64,
    pub engine: String,
    pub config: String,
    /// The component's hash in the chain's code store.
    pub component: Hash32,
}

/// Which switch serves `height`: the latest activation at or below it (`None`: the
/// genesis engine).
pub fn engine_at(schedule: &[EngineActivation], height: u64) -> Option<&EngineActivation> {
    schedule.iter().filter(|a| a.from_height <= height).max_by_key(|a| a.from_height)
}

/// A crypto-suite switch in force from a height on (the chain's suite schedule), with the
/// node set under the new suite.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuiteActivation {
    pub from_height: u64,
    pub suite: String,
    pub nodes: Vec<NodeSpec>,
}

/// Which suite serves `height`: the latest activation at or below it, else `genesis`.
pub fn suite_at<'a>(genesis: &'a str, schedule: &'a [SuiteActivation], height: u64) -> &'a str {
    schedule.iter().filter(|a| a.from_height <= height).max_by_key(|a| a.from_height).map_or(genesis, |a| a.suite.as_str())
}

/// An account's key in another suite ([`joule_primitives::Payload::BindKey`]), kept in the
/// governance account's storage under [`binding_key`].
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Binding {
    /// SubjectPublicKeyInfo DER, in the suite's signature algorithm.
    #[serde(with = "joule_primitives::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub public_key: Vec<u8>,
    /// The block that bound it.
    pub bound_at: u64,
}

/// The governance storage key of `account`'s binding in `suite` (a Borsh [`Binding`]).
pub fn binding_key(suite: &str, account: &Hash32) -> String {
    format!("binding/{suite}/{account}")
}

/// The governance storage key that says which account bound the key whose id in `suite`
/// is `bound_id` (the account id, 32 bytes), so two accounts cannot bind one key.
pub fn bound_id_key(suite: &str, bound_id: &Hash32) -> String {
    format!("bound/{suite}/{bound_id}")
}

/// The members under the suite a switch starts: each validator's key replaced by the key
/// it bound (`bound(old key)`), the nodes those the switch lists. `Err`: a validator that
/// has no binding (the switch could not have passed; the state is inconsistent).
pub fn rekeyed(members: &Members, activation: &SuiteActivation, bound: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Result<Members, String> {
    let validators = members
        .validators
        .iter()
        .map(|v| match bound(&v.public_key) {
            Some(public_key) => Ok(ValidatorSpec { public_key, weight: v.weight }),
            None => Err(format!("a validator has no key of suite {} bound", activation.suite)),
        })
        .collect::<Result<_, String>>()?;
    Ok(Members { validators, nodes: activation.nodes.clone() })
}

/// Check a key binding ([`joule_primitives::Payload::BindKey`]) under the channel's current
/// suite: `suite` is another suite the same implementations serve, and `proof` is the new
/// key's signature over [`joule_primitives::bind_key_message`]. Returns that suite, bound.
/// Admission (no nonce spent) and execution (a reverted receipt) both ask.
pub fn check_binding(
    current: &dyn ChainCrypto,
    channel: &ChannelId,
    account: &Hash32,
    suite: &str,
    public_key: &[u8],
    proof: &[u8],
) -> Result<Arc<dyn ChainCrypto>, String> {
    if suite == current.suite().id {
        return Err(format!("channel {channel} already uses suite {suite}: bind a key of the suite it will switch to"));
    }
    let other = current.bind_suite(suite).ok_or_else(|| format!("this node cannot bind suite {suite}: its crypto plugins do not serve it"))?;
    let message = joule_primitives::bind_key_message(channel, account, suite, public_key);
    match other.verify(public_key, &message, proof) {
        Ok(true) => Ok(other),
        Ok(false) => Err(format!("the proof is not the {suite} key's signature over the binding (see bind_key_message in docs/formats.md)")),
        Err(e) => Err(format!("the bound key is not a {} public key: {e}", other.suite().signature)),
    }
}

/// What the rules need to know of the world around them.
pub trait Checks {
    /// Whether a public key parses under the channel's signature algorithm: a validator
    /// that could never seal would halt the chain at its turn.
    fn usable_key(&self, public_key: &[u8]) -> bool;
    /// Whether the chain's code store holds a component of this hash (or the proposal
    /// brings it).
    fn has_component(&self, hash: &Hash32) -> bool;
    /// The finality depth of the block being executed (its engine, its validators): an
    /// engine switch must start after the block that passes it is final. 0 at admission.
    fn finality_depth(&self) -> u64 {
        0
    }
    /// The suite in force in the block being executed.
    fn suite(&self) -> &str;
    /// Whether this node can bind `suite` (its plugins serve the suite's algorithms); every
    /// node checks, so a switch to a suite one of them lacks does not pass.
    fn suite_available(&self, suite: &str) -> bool;
    /// Whether the validator of this public key has bound a key of `suite`.
    fn bound(&self, public_key: &[u8], suite: &str) -> bool;
    /// Whether `account` may move to `public_key` (see [`Change::MoveAccount`]); `Err`: why not.
    fn movable(&self, account: &Hash32, public_key: &[u8]) -> Result<(), String>;
    /// Whether the chain identifies senders by certificates ([`crate::identity`]).
    fn certificates(&self) -> bool {
        false
    }
    /// Whether an organisation change applies now (`Err`: why not); only chains with
    /// certificates have organisations.
    fn organisation(&self, change: &Change) -> Result<(), String> {
        let _ = change;
        Err("the channel has no certificates, so no organisations".into())
    }
}

/// The governance state of a block, being changed by its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governed {
    pub members: Members,
    pub proposals: Vec<Proposal>,
    /// Engine switches, ascending by height.
    pub engines: Vec<EngineActivation>,
    /// Suite switches, ascending by height.
    pub suites: Vec<SuiteActivation>,
}

impl Governed {
    /// The state from its stored values: `read(key)` gives a value's bytes, if there is
    /// one; a state without `members` has `genesis`. `corrupt(key)`: the error for a value
    /// that does not decode.
    pub fn load<E>(genesis: &Members, read: impl Fn(&str) -> Result<Option<Vec<u8>>, E>, corrupt: impl Fn(&str) -> E) -> Result<Governed, E> {
        fn value<T: BorshDeserialize, E>(key: &str, bytes: Option<Vec<u8>>, default: T, corrupt: &impl Fn(&str) -> E) -> Result<T, E> {
            match bytes {
                Some(b) => borsh::from_slice(&b).map_err(|_| corrupt(key)),
                None => Ok(default),
            }
        }
        Ok(Governed {
            members: value(MEMBERS_KEY, read(MEMBERS_KEY)?, genesis.clone(), &corrupt)?,
            proposals: value(PROPOSALS_KEY, read(PROPOSALS_KEY)?, vec![], &corrupt)?,
            engines: value(ENGINES_KEY, read(ENGINES_KEY)?, vec![], &corrupt)?,
            suites: value(SUITES_KEY, read(SUITES_KEY)?, vec![], &corrupt)?,
        })
    }

    /// Apply `action`, sent by the validator key `sender` in block `height`; `id` is the
    /// proposal id of a `Propose`'s changes. `Err`: why nothing changed.
    pub fn apply(&mut self, sender: &[u8], height: u64, action: &Governance, id: Option<Hash32>, checks: &dyn Checks) -> Result<Outcome, String> {
        if self.members.weight_of(sender) == 0 {
            return Err("only the channel's validators govern it, and the sender is not one".into());
        }
        let check_expiry = |expires_at: u64| {
            let latest = height.saturating_add(MAX_VOTE_BLOCKS);
            if expires_at <= height || expires_at > latest {
                return Err(format!("a vote must expire after this block ({height}) and at most at {latest}, not at {expires_at}"));
            }
            Ok(())
        };
        let proposal = match action {
            Governance::Propose { changes, expires_at, .. } => {
                check_expiry(*expires_at)?;
                check_changes(changes, checks)?;
                let id = id.ok_or("a proposal needs its id")?;
                if !self.proposals.iter().any(|p| p.id == id) {
                    self.prune(height);
                    if self.proposals.len() >= MAX_OPEN_PROPOSALS {
                        return Err(format!("{MAX_OPEN_PROPOSALS} proposals are open already: vote on them or let them expire"));
                    }
                    self.proposals.push(Proposal { id, changes: changes.clone(), proposed_at: height, votes: vec![] });
                }
                self.cast(id, sender, *expires_at);
                id
            }
            Governance::Vote { proposal, expires_at } => {
                check_expiry(*expires_at)?;
                if !self.proposals.iter().any(|p| p.id == *proposal && p.votes.iter().any(|v| v.expires_at > height)) {
                    return Err(format!("no open proposal {proposal}"));
                }
                self.cast(*proposal, sender, *expires_at);
                *proposal
            }
            Governance::Withdraw { proposal } => {
                let p = self.proposals.iter_mut().find(|p| p.id == *proposal).ok_or_else(|| format!("no open proposal {proposal}"))?;
                let before = p.votes.len();
                p.votes.retain(|v| v.voter != sender);
                if p.votes.len() == before {
                    return Err(format!("the sender has no vote on proposal {proposal} to withdraw"));
                }
                *proposal
            }
        };
        let (passed, failed, effects) = self.settle(height, checks);
        Ok(Outcome { proposal, passed, failed, moves: effects.moves, organisations: effects.organisations })
    }

    fn cast(&mut self, id: Hash32, voter: &[u8], expires_at: u64) {
        if let Some(p) = self.proposals.iter_mut().find(|p| p.id == id) {
            p.votes.retain(|v| v.voter != voter);
            p.votes.push(Vote { voter: voter.to_vec(), expires_at });
        }
    }

    /// Drop expired votes and votes of non-validators, then proposals without votes.
    fn prune(&mut self, height: u64) {
        let members = &self.members;
        for p in &mut self.proposals {
            p.votes.retain(|v| v.expires_at > height && members.weight_of(&v.voter) > 0);
        }
        self.proposals.retain(|p| !p.votes.is_empty());
    }

    /// Weight of the live votes for `p`.
    pub fn weight_for(&self, p: &Proposal, height: u64) -> u64 {
        p.votes.iter().filter(|v| v.expires_at > height).fold(0u64, |sum, v| sum.saturating_add(self.members.weight_of(&v.voter)))
    }

    /// Pass every proposal over half of the weight, counting again after each.
    fn settle(&mut self, height: u64, checks: &dyn Checks) -> Settled {
        let (mut passed, mut failed, mut effects) = (vec![], vec![], Effects::default());
        loop {
            self.prune(height);
            let total = self.members.voting_weight();
            let Some(i) = self.proposals.iter().position(|p| self.weight_for(p, height).saturating_mul(2) > total) else { break };
            let p = self.proposals.remove(i);
            match self.passing(&p, height, checks) {
                Ok(e) => {
                    passed.push(p.id);
                    effects.moves.extend(e.moves);
                    effects.organisations.extend(e.organisations);
                }
                Err(why) => failed.push((p.id, why)),
            }
        }
        (passed, failed, effects)
    }

    /// Apply a proposal that has the votes, or say why it cannot apply (nothing changes);
    /// the accounts it moves and the organisation changes it makes.
    fn passing(&mut self, p: &Proposal, height: u64, checks: &dyn Checks) -> Result<Effects, String> {
        let mut moves = vec![];
        let mut organisations = vec![];
        let (mut next, mut engines, mut suites) = (self.members.clone(), self.engines.clone(), self.suites.clone());
        // The block that passes a switch, and so the switch itself, must be final under the
        // old rules before the new ones start.
        let finality_depth = checks.finality_depth();
        let earliest = height.saturating_add(finality_depth).saturating_add(1);
        let pending = self.suites.iter().find(|a| a.from_height > height);
        for c in &p.changes {
            match c {
                Change::SwitchEngine { from_height, engine, config, component } => {
                    if *from_height < earliest {
                        return Err(format!(
                            "its engine switch at height {from_height} comes before {earliest}: block {height}, which passes it, is final only {finality_depth} blocks later"
                        ));
                    }
                    engines.retain(|a| a.from_height < *from_height);
                    engines.push(EngineActivation { from_height: *from_height, engine: engine.clone(), config: config.clone(), component: *component });
                }
                Change::SwitchSuite { from_height, suite, nodes } => {
                    if let Some(a) = pending {
                        return Err(format!("the switch to suite {} at height {} is pending; one suite switch at a time", a.suite, a.from_height));
                    }
                    if suite == checks.suite() {
                        return Err(format!("the channel already uses suite {suite}"));
                    }
                    if !checks.suite_available(suite) {
                        return Err(format!("this node cannot bind suite {suite}: its crypto plugins do not serve it"));
                    }
                    if *from_height < earliest {
                        return Err(format!(
                            "its suite switch at height {from_height} comes before {earliest}: block {height}, which passes it, is final only {finality_depth} blocks later"
                        ));
                    }
                    suites.retain(|a| a.from_height < *from_height);
                    suites.push(SuiteActivation { from_height: *from_height, suite: suite.clone(), nodes: nodes.clone() });
                }
                Change::MoveAccount { account, public_key } => {
                    if moves.iter().any(|(a, _): &(Hash32, Vec<u8>)| a == account) {
                        return Err(format!("it moves account {account} twice"));
                    }
                    checks.movable(account, public_key).map_err(|why| format!("account {account} cannot move: {why}"))?;
                    moves.push((*account, public_key.clone()));
                }
                Change::AddOrganisation { name, .. } | Change::RemoveOrganisation { name } => {
                    checks.organisation(c).map_err(|why| format!("organisation {name}: {why}"))?;
                    organisations.push(c.clone());
                }
                other => {
                    if let Some(a) = pending {
                        return Err(format!("membership changes wait until the switch to suite {} at height {} is done", a.suite, a.from_height));
                    }
                    next.apply(other)
                }
            }
        }
        if next.voting_weight() == 0 {
            return Err("it would leave the channel without a voting validator".to_string());
        }
        // A switch needs the keys of the members it leaves the channel with.
        if let Some(a) = suites.iter().find(|a| a.from_height > height && !self.suites.contains(a)) {
            let unbound = next.validators.iter().filter(|v| !checks.bound(&v.public_key, &a.suite)).count();
            if unbound > 0 {
                return Err(format!(
                    "{unbound} of {} validators have not bound a key of suite {} (each sends a bind_key transaction first)",
                    next.validators.len(),
                    a.suite
                ));
            }
            let mut listed: Vec<&str> = a.nodes.iter().map(|n| n.name.as_str()).collect();
            listed.sort_unstable();
            let mut members: Vec<&str> = next.nodes.iter().map(|n| n.name.as_str()).collect();
            members.sort_unstable();
            if listed != members {
                return Err(format!(
                    "its node list ({}) must name each node of the channel ({}) once, with its {} network key",
                    listed.join(", "),
                    members.join(", "),
                    a.suite
                ));
            }
        }
        self.members = next;
        self.engines = engines;
        self.suites = suites;
        Ok(Effects { moves, organisations })
    }
}

/// What passed proposals do beyond membership and schedules: accounts moved, organisation
/// changes (the executor applies both).
#[derive(Debug, Default)]
struct Effects {
    moves: Vec<(Hash32, Vec<u8>)>,
    organisations: Vec<Change>,
}

/// Proposals passed, proposals failed with why, their effects.
type Settled = (Vec<Hash32>, Vec<(Hash32, String)>, Effects);

/// Refuse a proposal that adds a validator whose key the suite cannot use, or switches to
/// an engine whose component is not on chain.
pub fn check_changes(changes: &[Change], checks: &dyn Checks) -> Result<(), String> {
    for (i, c) in changes.iter().enumerate() {
        match c {
            Change::AddValidator { public_key, .. } if !checks.usable_key(public_key) => {
                return Err(format!("change {i}: the validator key is not a public key of the channel's signature algorithm"));
            }
            Change::SwitchEngine { component, .. } if !checks.has_component(component) => {
                return Err(format!("change {i}: no component {component} is on chain: send its bytes with the proposal"));
            }
            Change::MoveAccount { public_key, .. } if !checks.usable_key(public_key) => {
                return Err(format!("change {i}: the key to move the account to is not a public key of the channel's signature algorithm"));
            }
            Change::AddOrganisation { .. } | Change::RemoveOrganisation { .. } => {
                if !checks.certificates() {
                    return Err(format!("change {i}: the channel has no certificates, so no organisations"));
                }
                // Checked again when it passes, on the state then.
                checks.organisation(c).map_err(|why| format!("change {i}: {why}"))?;
            }
            Change::SwitchSuite { .. } if checks.certificates() => {
                return Err(format!(
                    "change {i}: a channel with certificates cannot switch its crypto suite: its certificates certify keys of the current suite"
                ));
            }
            Change::SwitchSuite { suite, .. } if !checks.suite_available(suite) => {
                return Err(format!("change {i}: this node cannot bind suite {suite}: its crypto plugins do not serve it"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The governance state as the API shows it: at a height, with each proposal's weight.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GovernanceView {
    /// The block whose state this is; votes count in the blocks after it.
    pub height: u64,
    pub members: Members,
    pub voting_weight: u64,
    /// Weight a proposal needs to pass: more than half of the voting weight.
    pub weight_needed: u64,
    pub proposals: Vec<ProposalView>,
    /// Engine switches, ascending by height; before the first, the genesis engine.
    pub engines: Vec<EngineActivation>,
    /// Suite switches, ascending by height; before the first, the genesis suite.
    pub suites: Vec<SuiteActivation>,
    /// This node's dry runs of the engines open proposals switch to (see [`DryRun`]).
    pub dry_runs: Vec<DryRun>,
}

/// A node's trial of a candidate engine against its own recent blocks, before it votes for
/// the switch (the node votes only when it passed): the component loads with its
/// configuration; its rules judge each recent header (a rejection is expected, since
/// another engine sealed them, but a trap, a timeout or a wrong answer is not); it names
/// a finality depth and a weight; and a participant started at the head takes a new head,
/// a timer and a garbage message without failing.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    pub proposal: Hash32,
    pub component: Hash32,
    /// The engine's name, when it loaded.
    pub engine: Option<String>,
    /// The head it ran at.
    pub height: u64,
    /// Recent headers it judged.
    pub blocks: u64,
    /// How many of them its rules accepted (the others were refused, not failed).
    pub accepted: u64,
    pub finality_depth: Option<u64>,
    /// The actions its participant answered the head with, by kind.
    pub actions: Vec<String>,
    pub passed: bool,
    /// What failed, when it did.
    pub failure: Option<String>,
}

/// An open proposal with the votes that still count.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProposalView {
    pub id: Hash32,
    pub changes: Vec<Change>,
    pub proposed_at: u64,
    pub votes: Vec<Vote>,
    pub weight_for: u64,
}

impl GovernanceView {
    /// The view of `g`, the state of block `height`: a vote counts in the next block if it
    /// expires after it.
    pub fn new(g: &Governed, height: u64) -> GovernanceView {
        let next = height.saturating_add(1);
        let voting_weight = g.members.voting_weight();
        let proposals = g
            .proposals
            .iter()
            .map(|p| {
                let votes: Vec<Vote> = p.votes.iter().filter(|v| v.expires_at > next && g.members.weight_of(&v.voter) > 0).cloned().collect();
                ProposalView { id: p.id, changes: p.changes.clone(), proposed_at: p.proposed_at, weight_for: g.weight_for(p, next), votes }
            })
            .filter(|p| !p.votes.is_empty())
            .collect();
        GovernanceView {
            height,
            members: g.members.clone(),
            voting_weight,
            weight_needed: voting_weight / 2 + 1,
            proposals,
            engines: g.engines.clone(),
            suites: g.suites.clone(),
            dry_runs: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Usable keys are the 4-byte ones; the code store holds components [7; 32] only; the
    /// chain runs `intl` and can bind `gm`, for which validators 1-3 have bound keys.
    struct TestChecks;
    impl Checks for TestChecks {
        fn usable_key(&self, public_key: &[u8]) -> bool {
            public_key.len() == 4
        }
        fn has_component(&self, hash: &Hash32) -> bool {
            *hash == Hash32([7; 32])
        }
        fn suite(&self) -> &str {
            "intl"
        }
        fn suite_available(&self, suite: &str) -> bool {
            suite == "gm" || suite == "intl"
        }
        fn bound(&self, public_key: &[u8], suite: &str) -> bool {
            suite == "gm" && public_key.first().is_some_and(|b| (1..=3).contains(b))
        }
        fn movable(&self, account: &Hash32, _: &[u8]) -> Result<(), String> {
            if account.0[0] == 0 { Err("no such account".into()) } else { Ok(()) }
        }
    }

    fn act(g: &mut Governed, sender: &[u8], height: u64, action: &Governance, id: Option<Hash32>) -> Result<Outcome, String> {
        g.apply(sender, height, action, id, &TestChecks)
    }

    fn key(n: u8) -> Vec<u8> {
        vec![n; 4]
    }

    fn four() -> Governed {
        let validators = (1..=4).map(|n| ValidatorSpec { public_key: key(n), weight: 1 }).collect();
        Governed { members: Members { validators, nodes: vec![] }, proposals: vec![], engines: vec![], suites: vec![] }
    }

    fn add(n: u8) -> Governance {
        Governance::Propose { changes: vec![Change::AddValidator { public_key: key(n), weight: 1 }], expires_at: 100, components: vec![] }
    }

    fn id(n: u8) -> Option<Hash32> {
        Some(Hash32([n; 32]))
    }

    fn vote(n: u8, expires_at: u64) -> Governance {
        Governance::Vote { proposal: Hash32([n; 32]), expires_at }
    }

    #[test]
    fn a_proposal_passes_with_more_than_half_of_the_weight_and_not_before() {
        let mut g = four();
        let out = act(&mut g, &key(1), 10, &add(5), id(5)).unwrap();
        assert_eq!(out.passed, vec![]);
        assert!(act(&mut g, &key(2), 11, &vote(5, 100), None).unwrap().passed.is_empty(), "2 of 4 is not more than half");
        let out = act(&mut g, &key(3), 12, &vote(5, 100), None).unwrap();
        assert_eq!(out.passed, vec![Hash32([5; 32])]);
        assert_eq!(g.members.validators.len(), 5);
        assert!(g.proposals.is_empty());
    }

    #[test]
    fn a_withdrawn_vote_does_not_count() {
        let mut g = four();
        act(&mut g, &key(1), 10, &add(5), id(5)).unwrap();
        act(&mut g, &key(2), 11, &vote(5, 100), None).unwrap();
        act(&mut g, &key(2), 12, &Governance::Withdraw { proposal: Hash32([5; 32]) }, None).unwrap();
        assert!(act(&mut g, &key(3), 13, &vote(5, 100), None).unwrap().passed.is_empty());
        assert_eq!(g.members.validators.len(), 4);
        assert!(act(&mut g, &key(2), 14, &Governance::Withdraw { proposal: Hash32([5; 32]) }, None).is_err(), "nothing left to withdraw");
    }

    #[test]
    fn an_expired_vote_does_not_count_and_a_proposal_without_live_votes_closes() {
        let mut g = four();
        act(
            &mut g,
            &key(1),
            10,
            &Governance::Propose { changes: vec![Change::RemoveValidator { public_key: key(4) }], expires_at: 20, components: vec![] },
            id(7),
        )
        .unwrap();
        act(&mut g, &key(2), 11, &vote(7, 15), None).unwrap();
        // At 20 both earlier votes have expired: the third is alone.
        let out = act(&mut g, &key(3), 20, &vote(7, 100), None);
        assert!(out.is_err(), "the proposal closed when its votes expired: {out:?}");
        assert_eq!(g.members.validators.len(), 4);
    }

    #[test]
    fn only_validators_govern_and_expiries_are_bounded() {
        let mut g = four();
        assert!(act(&mut g, &key(9), 10, &add(5), id(5)).unwrap_err().contains("not one"));
        assert!(act(&mut g, &key(1), 10, &Governance::Propose { changes: vec![], expires_at: 10, components: vec![] }, id(5)).is_err(), "expires in the past");
        assert!(act(&mut g, &key(1), 10, &Governance::Propose { changes: vec![], expires_at: 10 + MAX_VOTE_BLOCKS + 1, components: vec![] }, id(5)).is_err());
        assert!(act(&mut g, &key(1), 10, &vote(6, 100), None).unwrap_err().contains("no open proposal"));
        assert!(g.proposals.is_empty());
    }

    #[test]
    fn a_removal_counts_the_other_proposals_again_under_the_smaller_set() {
        let mut g = four();
        // Two of four for adding 5: not yet.
        act(&mut g, &key(1), 10, &add(5), id(5)).unwrap();
        act(&mut g, &key(2), 10, &vote(5, 100), None).unwrap();
        // 1, 2 and 3 remove 4; then 2 of 3 is a majority for adding 5.
        let remove = Governance::Propose { changes: vec![Change::RemoveValidator { public_key: key(4) }], expires_at: 100, components: vec![] };
        act(&mut g, &key(1), 11, &remove, id(4)).unwrap();
        act(&mut g, &key(2), 11, &vote(4, 100), None).unwrap();
        let out = act(&mut g, &key(3), 12, &vote(4, 100), None).unwrap();
        assert_eq!(out.passed, vec![Hash32([4; 32]), Hash32([5; 32])]);
        let keys: Vec<Vec<u8>> = g.members.validators.iter().map(|v| v.public_key.clone()).collect();
        assert_eq!(keys, vec![key(1), key(2), key(3), key(5)]);
    }

    #[test]
    fn removing_every_validator_fails_and_changes_nothing() {
        let mut g = Governed {
            members: Members { validators: vec![ValidatorSpec { public_key: key(1), weight: 1 }], nodes: vec![] },
            proposals: vec![],
            engines: vec![],
            suites: vec![],
        };
        let out = act(
            &mut g,
            &key(1),
            1,
            &Governance::Propose { changes: vec![Change::RemoveValidator { public_key: key(1) }], expires_at: 9, components: vec![] },
            id(1),
        )
        .unwrap();
        assert_eq!(out.passed, vec![]);
        assert_eq!(out.failed.len(), 1);
        assert_eq!(g.members.validators.len(), 1);
    }

    #[test]
    fn a_validator_key_the_suite_cannot_use_is_refused() {
        let mut g = four();
        let bad = Governance::Propose { changes: vec![Change::AddValidator { public_key: vec![1, 2, 3], weight: 1 }], expires_at: 9, components: vec![] };
        assert!(act(&mut g, &key(1), 1, &bad, id(1)).unwrap_err().contains("not a public key"));
        assert!(g.proposals.is_empty());
    }

    #[test]
    fn an_engine_switch_joins_the_schedule_if_it_is_ahead_and_its_component_is_on_chain() {
        let mut g = four();
        let switch = |from_height: u64, component: u8| Governance::Propose {
            changes: vec![Change::SwitchEngine { from_height, engine: "bft".into(), config: String::new(), component: Hash32([component; 32]) }],
            expires_at: 100,
            components: vec![],
        };
        assert!(act(&mut g, &key(1), 10, &switch(20, 8), id(1)).unwrap_err().contains("no component"), "not on chain");
        for voter in 1..=3 {
            act(&mut g, &key(voter), 10, &switch(20, 7), id(2)).unwrap();
        }
        assert_eq!(g.engines.len(), 1);
        assert_eq!((g.engines[0].from_height, g.engines[0].component), (20, Hash32([7; 32])));
        assert_eq!(engine_at(&g.engines, 19), None, "the genesis engine below it");
        assert_eq!(engine_at(&g.engines, 20).map(|a| a.from_height), Some(20));
        // A switch voted through at or after its height fails and changes nothing.
        act(&mut g, &key(1), 30, &switch(30, 7), id(3)).unwrap();
        act(&mut g, &key(2), 30, &switch(30, 7), id(3)).unwrap();
        let out = act(&mut g, &key(3), 30, &switch(30, 7), id(3)).unwrap();
        assert!(out.failed.iter().any(|(_, why)| why.contains("comes before 31")), "{out:?}");
        assert_eq!(g.engines.len(), 1);
        // A later switch back keeps the earlier one for the history below it.
        for voter in 1..=3 {
            act(&mut g, &key(voter), 31, &switch(40, 7), id(4)).unwrap();
        }
        assert_eq!(g.engines.iter().map(|a| a.from_height).collect::<Vec<_>>(), vec![20, 40]);
        assert_eq!(engine_at(&g.engines, 39).map(|a| a.from_height), Some(20));
        // Under an engine whose blocks are final 6 deep, a switch passed at 41 starts at 48
        // at the earliest: the block that passes it must be final first.
        struct Deep;
        impl Checks for Deep {
            fn usable_key(&self, _: &[u8]) -> bool {
                true
            }
            fn has_component(&self, _: &Hash32) -> bool {
                true
            }
            fn finality_depth(&self) -> u64 {
                6
            }
            fn suite(&self) -> &str {
                "intl"
            }
            fn suite_available(&self, _: &str) -> bool {
                true
            }
            fn bound(&self, _: &[u8], _: &str) -> bool {
                true
            }
            fn movable(&self, _: &Hash32, _: &[u8]) -> Result<(), String> {
                Ok(())
            }
        }
        for (target, voted, outcome) in [(47, 5, "comes before 48"), (48, 6, "")] {
            let mut out = None;
            for voter in 1..=3 {
                out = Some(g.apply(&key(voter), 41, &switch(target, 7), id(voted), &Deep).unwrap());
            }
            let out = out.unwrap();
            if outcome.is_empty() {
                assert_eq!(out.passed.len(), 1, "{out:?}");
            } else {
                assert!(out.failed.iter().any(|(_, why)| why.contains(outcome)), "{out:?}");
            }
        }
        assert_eq!(g.engines.iter().map(|a| a.from_height).collect::<Vec<_>>(), vec![20, 40, 48]);
    }

    fn switch_suite(suite: &str, from_height: u64, nodes: &[&str]) -> Governance {
        let nodes = nodes.iter().map(|n| NodeSpec { name: (*n).into(), network_key: vec![2; 33] }).collect();
        Governance::Propose { changes: vec![Change::SwitchSuite { from_height, suite: suite.into(), nodes }], expires_at: 100, components: vec![] }
    }

    /// Validators 1, 2, 3… propose `action` until it passes or fails.
    fn pass(g: &mut Governed, height: u64, action: &Governance, proposal: u8) -> Outcome {
        for voter in 1..=3 {
            let out = act(g, &key(voter), height, action, id(proposal)).unwrap();
            if !out.passed.is_empty() || !out.failed.is_empty() {
                return out;
            }
        }
        panic!("proposal {proposal} neither passed nor failed");
    }

    #[test]
    fn a_suite_switch_passes_once_every_validator_bound_a_key_and_every_node_is_listed() {
        let mut g = four();
        g.members.nodes = ["a", "b"].iter().map(|n| NodeSpec { name: (*n).into(), network_key: vec![3; 33] }).collect();
        // Validator 4 has no gm key: the switch cannot pass.
        let out = pass(&mut g, 10, &switch_suite("gm", 20, &["a", "b"]), 1);
        assert!(out.failed.iter().any(|(_, why)| why.contains("1 of 4 validators have not bound")), "{out:?}");
        assert!(g.suites.is_empty());
        // Without validator 4 (removed in the same proposal), all who remain have bound.
        let both = |nodes: &[&str]| {
            let Governance::Propose { mut changes, .. } = switch_suite("gm", 20, nodes) else { unreachable!() };
            changes.insert(0, Change::RemoveValidator { public_key: key(4) });
            Governance::Propose { changes, expires_at: 100, components: vec![] }
        };
        let out = pass(&mut g, 10, &both(&["a"]), 2);
        assert!(out.failed.iter().any(|(_, why)| why.contains("must name each node")), "node b is missing: {out:?}");
        let out = pass(&mut g, 10, &both(&["b", "a"]), 3);
        assert_eq!(out.passed.len(), 1, "{out:?}");
        assert_eq!((g.suites.len(), g.members.validators.len()), (1, 3));
        assert_eq!(suite_at("intl", &g.suites, 19), "intl");
        assert_eq!(suite_at("intl", &g.suites, 20), "gm");
        // While it is pending: no membership change, no second suite switch.
        let out = pass(&mut g, 11, &add(9), 4);
        assert!(out.failed.iter().any(|(_, why)| why.contains("wait until the switch to suite gm at height 20")), "{out:?}");
        let out = pass(&mut g, 11, &switch_suite("intl", 30, &["a", "b"]), 5);
        assert!(out.failed.iter().any(|(_, why)| why.contains("is pending")), "{out:?}");
        assert_eq!(g.members.validators.len(), 3);
    }

    #[test]
    fn a_suite_switch_must_lie_ahead_change_the_suite_and_name_one_the_node_can_bind() {
        let mut g =
            Governed { members: Members { validators: (1..=3).map(|n| ValidatorSpec { public_key: key(n), weight: 1 }).collect(), nodes: vec![] }, ..four() };
        assert!(act(&mut g, &key(1), 10, &switch_suite("sm9", 20, &[]), id(1)).unwrap_err().contains("cannot bind suite sm9"));
        let out = pass(&mut g, 10, &switch_suite("intl", 20, &[]), 2);
        assert!(out.failed.iter().any(|(_, why)| why.contains("already uses suite intl")), "{out:?}");
        let out = pass(&mut g, 10, &switch_suite("gm", 10, &[]), 3);
        assert!(out.failed.iter().any(|(_, why)| why.contains("comes before 11")), "{out:?}");
        assert!(g.suites.is_empty());
    }

    #[test]
    fn open_proposals_are_bounded() {
        let mut g = four();
        for n in 0..MAX_OPEN_PROPOSALS as u8 {
            act(&mut g, &key(1), 1, &add(100 + n), Some(Hash32([n; 32]))).unwrap();
        }
        assert!(act(&mut g, &key(1), 1, &add(99), Some(Hash32([255; 32]))).unwrap_err().contains("open already"));
    }
}
