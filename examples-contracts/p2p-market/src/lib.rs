//! `p2p-market`: a peer-to-peer electricity market (guide §3.2).
//!
//! # Flow
//!
//! 1. The owner deploys the market with the addresses of the settlement token
//!    (`energy-token`) and of the `energy-units` library, a dispute window and a fee, and
//!    grants roles.
//! 2. A **producer** (role `producer`) posts an offer: kWh, a price in tokens per kWh, and a
//!    validity window of block heights.
//! 3. A consumer (anyone) **buys** `kwh` of an offer (`buy`, or `trade`: the same hot path);
//!    partial fills are allowed. The price is settled through the library (`settle`, rounded
//!    down) and pulled from the buyer with the token's `transfer_from` into the market's
//!    escrow: the buyer first `approve`s the market.
//! 4. A **meter** (role `meter`) attests the delivered kWh of a trade (for a metering
//!    interval). After the dispute window (in blocks) has passed since the attestation,
//!    anyone calls `settle`: the producer receives the pro-rata share of the escrow for the
//!    delivered kWh (capped at the kWh bought) less the fee, the buyer the rest. With a
//!    window of 0, the attestation settles at once.
//! 5. The buyer may open a **dispute** while the trade is awaiting delivery or within the
//!    window after the attestation; the owner or an **arbiter** (role `arbiter`) resolves it,
//!    refunding the whole escrow to the buyer or releasing it (as `settle` would).
//!
//! # Permissions
//!
//! | who | may |
//! |---|---|
//! | owner | grant/revoke the roles `producer`, `meter`, `arbiter`; pause/unpause; set the fee; withdraw fees; resolve disputes |
//! | `producer` | post offers, cancel its own offers |
//! | anyone | buy (not from its own offer), settle a trade whose window has passed |
//! | `meter` | attest deliveries |
//! | the trade's buyer | open a dispute |
//! | `arbiter` | resolve disputes |
//!
//! Pausing stops posting, buying and attesting; settling, disputes and their resolution go on
//! so that escrowed funds are never stuck.

use energy_token::EnergyTokenRef;
use energy_units::EnergyUnitsLib;
use joule_contract_std::prelude::*;

/// The roles the owner grants.
pub const ROLES: [&str; 3] = ["producer", "meter", "arbiter"];
/// Most entries a paged query returns.
pub const MAX_PAGE: u32 = 100;
/// Most bytes of a dispute reason.
pub const MAX_REASON: usize = 256;

/// The market's configuration, set at deployment.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The settlement token (`energy-token`).
    pub token: Address,
    /// The `energy-units` library.
    pub units: Address,
    /// Blocks after an attestation during which the buyer may dispute.
    pub dispute_window: u64,
    /// The market's fee on settled payments, in basis points.
    pub fee_bps: u16,
}

/// An offer of energy.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub producer: Address,
    /// kWh offered in total.
    pub kwh: Decimal,
    /// kWh not yet bought.
    pub remaining_kwh: Decimal,
    /// Tokens per kWh.
    pub price_per_kwh: Decimal,
    /// First block height at which the offer can be bought.
    pub valid_from: u64,
    /// Last block height at which the offer can be bought.
    pub valid_until: u64,
    /// `false` once cancelled.
    pub open: bool,
}

/// Where a trade is.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TradeStatus {
    /// Paid into escrow; awaiting the meter.
    Escrowed,
    /// A meter attested the delivery; settles after the dispute window.
    Delivered,
    /// The buyer disputes it; the owner or an arbiter decides.
    Disputed,
    /// Paid out (producer share and refund of the undelivered part).
    Settled,
    /// Refunded to the buyer after a dispute.
    Refunded,
}

/// A meter's attestation of a delivery.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub meter: Address,
    pub delivered_kwh: Decimal,
    /// The metering interval (Unix ms, as the meter reports it).
    pub interval_start_ms: u64,
    pub interval_end_ms: u64,
    /// Block height of the attestation.
    pub height: u64,
}

/// A fill of an offer.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trade {
    pub offer_id: u64,
    pub producer: Address,
    pub buyer: Address,
    pub kwh: Decimal,
    pub price_per_kwh: Decimal,
    /// Token amount held in escrow (smallest unit).
    pub amount: U256,
    /// Block height of the trade.
    pub height: u64,
    pub status: TradeStatus,
    pub attestation: Option<Attestation>,
}

/// A producer posted an offer.
#[event]
pub struct OfferPosted {
    #[indexed]
    pub offer_id: u64,
    #[indexed]
    pub producer: Address,
    pub kwh: Decimal,
    pub price_per_kwh: Decimal,
    pub valid_from: u64,
    pub valid_until: u64,
}

/// A consumer bought part or all of an offer; `amount` is in escrow.
#[event]
pub struct Traded {
    #[indexed]
    pub trade_id: u64,
    #[indexed]
    pub offer_id: u64,
    #[indexed]
    pub buyer: Address,
    pub kwh: Decimal,
    pub amount: U256,
}

/// A meter attested a trade's delivery.
#[event]
pub struct DeliveryAttested {
    #[indexed]
    pub trade_id: u64,
    #[indexed]
    pub meter: Address,
    pub delivered_kwh: Decimal,
    pub interval_start_ms: u64,
    pub interval_end_ms: u64,
}

/// The escrow of a trade was paid out.
#[event]
pub struct Settled {
    #[indexed]
    pub trade_id: u64,
    #[indexed]
    pub producer: Address,
    pub to_producer: U256,
    pub refunded: U256,
    pub fee: U256,
}

/// The buyer disputed a trade.
#[event]
pub struct DisputeOpened {
    #[indexed]
    pub trade_id: u64,
    #[indexed]
    pub buyer: Address,
    pub reason: String,
}

/// A dispute was resolved: `refund` (to the buyer) or released (to the producer).
#[event]
pub struct DisputeResolved {
    #[indexed]
    pub trade_id: u64,
    #[indexed]
    pub resolver: Address,
    pub refund: bool,
}

/// The market's state.
#[derive(ContractState)]
pub struct P2pMarket {
    owner: Ownable,
    roles: Roles,
    paused: Pausable,
    config: Value<Config>,
    offers: Map<u64, Offer>,
    next_offer: Value<u64>,
    trades: Map<u64, Trade>,
    next_trade: Value<u64>,
    /// Tokens held for open trades.
    escrow: Value<U256>,
    /// Fees collected, not yet withdrawn.
    fees: Value<U256>,
    /// Dispute reasons by trade.
    reasons: Map<u64, String>,
}

fn page<T>(it: impl Iterator<Item = T>, limit: u32) -> Vec<T> {
    it.take(limit.min(MAX_PAGE) as usize).collect()
}

impl P2pMarket {
    fn config(&self) -> Config {
        self.config.expect("market not initialized")
    }

    fn token(&self, config: &Config) -> EnergyTokenRef {
        EnergyTokenRef::new(config.token)
    }

    fn units(&self, config: &Config) -> EnergyUnitsLib {
        EnergyUnitsLib::new(config.units)
    }

    fn trade_of(&self, trade_id: u64) -> Result<Trade, String> {
        self.trades.get(&trade_id).ok_or_else(|| format!("no trade {trade_id}"))
    }

    fn add_escrow(&self, delta: U256) {
        self.escrow.set(&(self.escrow.get_or(U256::ZERO) + delta));
    }

    fn take_escrow(&self, delta: U256) {
        self.escrow.set(&(self.escrow.get_or(U256::ZERO) - delta));
    }

    /// Pay `to` from the escrow (nothing for 0).
    fn pay(&self, config: &Config, to: Address, amount: U256) -> Result<(), String> {
        if amount.is_zero() {
            return Ok(());
        }
        self.token(config).transfer(to, amount).map_err(|e| e.to_string())
    }

    /// Pay out a trade: the producer's pro-rata share of the delivered kWh (all of it when
    /// `full`), less the fee, and the rest back to the buyer.
    fn release(&self, trade_id: u64, trade: &mut Trade, full: bool) -> Result<(), String> {
        let config = self.config();
        let units = self.units(&config);
        let share = if full {
            trade.amount
        } else {
            let delivered = trade
                .attestation
                .as_ref()
                .map(|a| a.delivered_kwh)
                .unwrap_or(Decimal::ZERO);
            let delivered = delivered.min(trade.kwh);
            units
                .pro_rata(trade.amount, delivered, trade.kwh)
                .map_err(|e| e.to_string())?
        };
        let (to_producer, fee) = units.split_fee(share, config.fee_bps).map_err(|e| e.to_string())?;
        let refunded = trade.amount - share;
        self.pay(&config, trade.producer, to_producer)?;
        self.pay(&config, trade.buyer, refunded)?;
        if !fee.is_zero() {
            self.fees.set(&(self.fees.get_or(U256::ZERO) + fee));
        }
        self.take_escrow(trade.amount);
        trade.status = TradeStatus::Settled;
        self.trades.insert(&trade_id, trade);
        Settled {
            trade_id,
            producer: trade.producer,
            to_producer,
            refunded,
            fee,
        }
        .emit();
        Ok(())
    }

    /// The hot path of `buy` / `trade`.
    fn fill(&mut self, offer_id: u64, kwh: Decimal) -> Result<u64, String> {
        self.paused.require_not_paused();
        let config = self.config();
        let mut offer = self
            .offers
            .get(&offer_id)
            .ok_or_else(|| format!("no offer {offer_id}"))?;
        let height = env::height();
        if !offer.open {
            return Err(format!("offer {offer_id} is cancelled"));
        }
        if height < offer.valid_from || height > offer.valid_until {
            return Err(format!(
                "offer {offer_id} is valid from block {} to {}, not at {height}",
                offer.valid_from, offer.valid_until
            ));
        }
        if kwh.is_zero() {
            return Err("buy at least some kWh".into());
        }
        if kwh > offer.remaining_kwh {
            return Err(format!(
                "offer {offer_id} has {} kWh left, not {kwh}",
                offer.remaining_kwh
            ));
        }
        let buyer = env::caller();
        if buyer == offer.producer {
            return Err("a producer cannot buy its own offer".into());
        }
        let amount = self
            .units(&config)
            .settle(kwh, offer.price_per_kwh)
            .map_err(|e| e.to_string())?;
        if amount.is_zero() {
            return Err("the trade is worth nothing: buy more kWh".into());
        }
        self.token(&config)
            .transfer_from(buyer, env::contract(), amount)
            .map_err(|e| format!("payment: {e}"))?;
        offer.remaining_kwh -= kwh;
        self.offers.insert(&offer_id, &offer);
        let trade_id = self.next_trade.get_or(0) + 1;
        self.next_trade.set(&trade_id);
        self.trades.insert(
            &trade_id,
            &Trade {
                offer_id,
                producer: offer.producer,
                buyer,
                kwh,
                price_per_kwh: offer.price_per_kwh,
                amount,
                height,
                status: TradeStatus::Escrowed,
                attestation: None,
            },
        );
        self.add_escrow(amount);
        Traded {
            trade_id,
            offer_id,
            buyer,
            kwh,
            amount,
        }
        .emit();
        Ok(trade_id)
    }
}

#[contract]
impl P2pMarket {
    /// Deploy: the caller becomes the owner.
    #[init]
    pub fn new(token: Address, units: Address, dispute_window: u64, fee_bps: u16) -> Result<Self, String> {
        if fee_bps > 10_000 {
            return Err("fee_bps is at most 10000".into());
        }
        let market = Self::default();
        market.owner.init(env::caller());
        market.config.set(&Config {
            token,
            units,
            dispute_window,
            fee_bps,
        });
        Ok(market)
    }

    /// Give `role` (`producer`, `meter` or `arbiter`) to `account`.
    #[guard(owner)]
    pub fn grant_role(&mut self, role: String, account: Address) -> Result<(), String> {
        if !ROLES.contains(&role.as_str()) {
            return Err(format!("unknown role {role}: one of {ROLES:?}"));
        }
        self.roles.grant(&role, account);
        Ok(())
    }

    /// Take `role` from `account`.
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

    /// Change the fee (basis points) of future settlements.
    #[guard(owner)]
    pub fn set_fee(&mut self, fee_bps: u16) -> Result<(), String> {
        if fee_bps > 10_000 {
            return Err("fee_bps is at most 10000".into());
        }
        let mut config = self.config();
        config.fee_bps = fee_bps;
        self.config.set(&config);
        Ok(())
    }

    /// Send the collected fees to `to`; returns the amount.
    #[guard(owner)]
    pub fn withdraw_fees(&mut self, to: Address) -> Result<U256, String> {
        let fees = self.fees.take().unwrap_or(U256::ZERO);
        self.pay(&self.config(), to, fees)?;
        Ok(fees)
    }

    /// Offer `kwh` at `price_per_kwh` tokens per kWh, buyable from block `valid_from` to
    /// `valid_until` (inclusive). Returns the offer id.
    #[guard(role = "producer", not_paused)]
    pub fn post_offer(
        &mut self,
        kwh: Decimal,
        price_per_kwh: Decimal,
        valid_from: u64,
        valid_until: u64,
    ) -> Result<u64, String> {
        if kwh.is_zero() || price_per_kwh.is_zero() {
            return Err("kWh and price must be positive".into());
        }
        if valid_from > valid_until || valid_until < env::height() {
            return Err("the validity window is empty or over".into());
        }
        let offer_id = self.next_offer.get_or(0) + 1;
        self.next_offer.set(&offer_id);
        let producer = env::caller();
        self.offers.insert(
            &offer_id,
            &Offer {
                producer,
                kwh,
                remaining_kwh: kwh,
                price_per_kwh,
                valid_from,
                valid_until,
                open: true,
            },
        );
        OfferPosted {
            offer_id,
            producer,
            kwh,
            price_per_kwh,
            valid_from,
            valid_until,
        }
        .emit();
        Ok(offer_id)
    }

    /// Withdraw an offer (its producer only); trades already made stand.
    pub fn cancel_offer(&mut self, offer_id: u64) -> Result<(), String> {
        let mut offer = self
            .offers
            .get(&offer_id)
            .ok_or_else(|| format!("no offer {offer_id}"))?;
        if offer.producer != env::caller() {
            return Err("only the producer cancels its offer".into());
        }
        offer.open = false;
        self.offers.insert(&offer_id, &offer);
        Ok(())
    }

    /// Buy `kwh` of offer `offer_id` (a partial fill when less than what is left): the price
    /// is pulled from the caller into escrow (approve the market on the token first).
    /// Returns the trade id.
    pub fn buy(&mut self, offer_id: u64, kwh: Decimal) -> Result<u64, String> {
        self.fill(offer_id, kwh)
    }

    /// The same as `buy`: the market's trade hot path (benchmarked).
    pub fn trade(&mut self, offer_id: u64, kwh: Decimal) -> Result<u64, String> {
        self.fill(offer_id, kwh)
    }

    /// A meter attests the kWh delivered for a trade during a metering interval. With a
    /// dispute window of 0, the trade settles at once.
    #[guard(role = "meter", not_paused)]
    pub fn attest_delivery(
        &mut self,
        trade_id: u64,
        delivered_kwh: Decimal,
        interval_start_ms: u64,
        interval_end_ms: u64,
    ) -> Result<TradeStatus, String> {
        let mut trade = self.trade_of(trade_id)?;
        if trade.status != TradeStatus::Escrowed {
            return Err(format!("trade {trade_id} is {:?}, not awaiting delivery", trade.status));
        }
        if interval_start_ms > interval_end_ms {
            return Err("the metering interval ends before it starts".into());
        }
        let meter = env::caller();
        trade.attestation = Some(Attestation {
            meter,
            delivered_kwh,
            interval_start_ms,
            interval_end_ms,
            height: env::height(),
        });
        trade.status = TradeStatus::Delivered;
        DeliveryAttested {
            trade_id,
            meter,
            delivered_kwh,
            interval_start_ms,
            interval_end_ms,
        }
        .emit();
        if self.config().dispute_window == 0 {
            self.release(trade_id, &mut trade, false)?;
        } else {
            self.trades.insert(&trade_id, &trade);
        }
        Ok(trade.status)
    }

    /// Pay out a delivered trade once its dispute window has passed (anyone may call).
    pub fn settle(&mut self, trade_id: u64) -> Result<(), String> {
        let mut trade = self.trade_of(trade_id)?;
        let attested = match (&trade.status, &trade.attestation) {
            (TradeStatus::Delivered, Some(a)) => a.height,
            (status, _) => return Err(format!("trade {trade_id} is {status:?}, not delivered")),
        };
        let open_until = attested.saturating_add(self.config().dispute_window);
        if env::height() <= open_until {
            return Err(format!("trade {trade_id} can be disputed until block {open_until}"));
        }
        self.release(trade_id, &mut trade, false)
    }

    /// The buyer disputes a trade awaiting delivery, or delivered within the window.
    pub fn open_dispute(&mut self, trade_id: u64, reason: String) -> Result<(), String> {
        let mut trade = self.trade_of(trade_id)?;
        let buyer = env::caller();
        if trade.buyer != buyer {
            return Err("only the buyer disputes a trade".into());
        }
        if reason.len() > MAX_REASON {
            return Err(format!("a reason is at most {MAX_REASON} bytes"));
        }
        match (&trade.status, &trade.attestation) {
            (TradeStatus::Escrowed, _) => {}
            (TradeStatus::Delivered, Some(a))
                if env::height() <= a.height.saturating_add(self.config().dispute_window) => {}
            (TradeStatus::Delivered, _) => return Err(format!("the dispute window of trade {trade_id} is over")),
            (status, _) => return Err(format!("trade {trade_id} is {status:?}: nothing to dispute")),
        }
        trade.status = TradeStatus::Disputed;
        self.trades.insert(&trade_id, &trade);
        self.reasons.insert(&trade_id, &reason);
        DisputeOpened {
            trade_id,
            buyer,
            reason,
        }
        .emit();
        Ok(())
    }

    /// The owner or an arbiter decides a dispute: `refund` returns the whole escrow to the
    /// buyer; otherwise it is released to the producer (pro rata of the attested delivery,
    /// or all of it when no meter attested).
    pub fn resolve_dispute(&mut self, trade_id: u64, refund: bool) -> Result<(), String> {
        let resolver = env::caller();
        if !self.owner.is_owner(&resolver) && !self.roles.has("arbiter", &resolver) {
            return Err("caller is neither the owner nor an arbiter".into());
        }
        let mut trade = self.trade_of(trade_id)?;
        if trade.status != TradeStatus::Disputed {
            return Err(format!("trade {trade_id} is not disputed"));
        }
        if refund {
            let config = self.config();
            self.pay(&config, trade.buyer, trade.amount)?;
            self.take_escrow(trade.amount);
            trade.status = TradeStatus::Refunded;
            self.trades.insert(&trade_id, &trade);
        } else {
            let full = trade.attestation.is_none();
            self.release(trade_id, &mut trade, full)?;
        }
        DisputeResolved {
            trade_id,
            resolver,
            refund,
        }
        .emit();
        Ok(())
    }

    /// Offers after `after` (by id), at most `limit` (≤ 100).
    pub fn offers(&self, after: Option<u64>, limit: u32) -> Vec<(u64, Offer)> {
        match after {
            Some(id) => page(self.offers.iter_from(&id), limit),
            None => page(self.offers.iter(), limit),
        }
    }

    pub fn offer(&self, offer_id: u64) -> Option<Offer> {
        self.offers.get(&offer_id)
    }

    /// Trades after `after` (by id), at most `limit` (≤ 100).
    pub fn trades(&self, after: Option<u64>, limit: u32) -> Vec<(u64, Trade)> {
        match after {
            Some(id) => page(self.trades.iter_from(&id), limit),
            None => page(self.trades.iter(), limit),
        }
    }

    pub fn get_trade(&self, trade_id: u64) -> Option<Trade> {
        self.trades.get(&trade_id)
    }

    pub fn dispute_reason(&self, trade_id: u64) -> Option<String> {
        self.reasons.get(&trade_id)
    }

    /// `(tokens in escrow, fees not yet withdrawn)`.
    pub fn balances(&self) -> (U256, U256) {
        (self.escrow.get_or(U256::ZERO), self.fees.get_or(U256::ZERO))
    }

    pub fn get_config(&self) -> Config {
        self.config()
    }

    pub fn has_role(&self, role: String, account: Address) -> bool {
        self.roles.has(&role, &account)
    }

    pub fn is_paused(&self) -> bool {
        self.paused.is_paused()
    }
}

#[cfg(test)]
mod tests;
