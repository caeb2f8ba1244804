//! Seeded company generator. Each record is a pure function of (seed, entity, index), and all
//! timestamps fall in the four years before [`ANCHOR_MS`].

use crate::model::*;
use crate::options::{Scale, SimOptions};
use crate::util::{ANCHOR_MS, DAY_MS, Ms, Rng, days_of, fmt_num};
use std::collections::HashMap;

const SPAN_MS: Ms = 4 * 365 * DAY_MS;

pub const FIRST: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kaia",
    "Liam", "Maria", "Noah", "Olga", "Paul", "Rita", "Sven", "Tanja", "Uwe", "Vera", "Walter",
    "Xenia", "Yusuf", "Zoe", "Mikk", "Kadri", "José", "Zoë", "Łukasz",
];
pub const LAST: &[&str] = &[
    "Tamm", "Saar", "Müller", "Smith", "García", "Rossi", "Novak", "Kowalski", "Jensen", "Dubois",
    "O'Brien", "Silva", "Ivanova", "Nakamura", "Kim", "Schmidt", "Brown", "Wilson", "Mägi", "Kask",
];
const ORG_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Nakatomi",
    "Aperture",
    "Monarch",
];
const ORG_B: &[&str] = &[
    "Industries",
    "Labs",
    "Group",
    "GmbH",
    "OÜ",
    "Ltd",
    "Inc.",
    "Partners",
    "Systems",
    "Trading",
];
const PRODUCTS: &[&str] = &[
    "Widget",
    "Gadget",
    "License",
    "Support plan",
    "Consulting hour",
    "Sensor",
    "Gateway",
    "Training",
    "Subscription",
    "Cable",
    "Adapter",
    "Dashboard seat",
];
const PRODUCT_ADJ: &[&str] = &[
    "Basic",
    "Pro",
    "Enterprise",
    "Mini",
    "Max",
    "Classic",
    "Eco",
];
const DEAL_WORDS: &[&str] = &[
    "renewal",
    "expansion",
    "pilot",
    "upgrade",
    "rollout",
    "migration",
    "POC",
    "annual deal",
];
const JOBS: &[&str] = &[
    "CEO",
    "CTO",
    "Buyer",
    "Head of Sales",
    "Engineer",
    "Office manager",
];
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Tallinn", "Harju maakond", "Estonia", "10111"),
    ("Berlin", "Berlin", "Germany", "10115"),
    ("New York", "NY", "United States", "10001"),
    ("London", "England", "United Kingdom", "EC1A 1BB"),
    ("Lisbon", "Lisboa", "Portugal", "1100-148"),
    ("Tartu", "Tartu maakond", "Estonia", "51003"),
    ("Sunnyvale", "CA", "United States", "94085"),
];
const STREETS: &[&str] = &[
    "Main St",
    "Narva mnt",
    "Kastanienallee",
    "Baker Street",
    "Rua Augusta",
];
pub const CURRENCIES: &[(&str, &str, &str)] = &[
    ("EUR", "Euro", "€"),
    ("USD", "US Dollar", "$"),
    ("GBP", "British Pound", "£"),
    ("SEK", "Swedish Krona", "kr"),
    ("JPY", "Japanese Yen", "¥"),
    ("CHF", "Swiss Franc", "CHF"),
    ("PLN", "Polish Zloty", "zł"),
    ("CAD", "Canadian Dollar", "CA$"),
];
const DEAL_CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "SEK"];
pub const ACTIVITY_TYPES: &[(&str, &str)] = &[
    ("call", "Call"),
    ("meeting", "Meeting"),
    ("task", "Task"),
    ("deadline", "Deadline"),
    ("email", "Email"),
    ("lunch", "Lunch"),
];
pub const LEAD_SOURCES: &[&str] = &[
    "Manually created",
    "Deal",
    "Web forms",
    "Prospector",
    "Leadbooster",
    "Live chat",
    "Import",
    "Website visitors",
    "Workflow automation",
    "API",
];
const LOST_REASONS: &[&str] = &[
    "Too expensive",
    "Went with competitor",
    "No budget",
    "No reply",
];
const ORIGINS: &[&str] = &["ManuallyCreated", "API", "Import", "WebForms"];

/// Record counts per scale.
pub struct Counts {
    pub users: u64,
    pub pipelines: u64,
    pub orgs: u64,
    pub persons: u64,
    pub deals: u64,
    pub activities: u64,
    pub products: u64,
    pub notes: u64,
    pub leads: u64,
}

pub fn counts(scale: Scale) -> Counts {
    let c = |users, pipelines, orgs, persons, deals, activities, products, notes, leads| Counts {
        users,
        pipelines,
        orgs,
        persons,
        deals,
        activities,
        products,
        notes,
        leads,
    };
    match scale {
        Scale::Empty => c(1, 1, 0, 0, 0, 0, 0, 0, 0),
        Scale::Tiny => c(4, 2, 20, 40, 60, 80, 12, 40, 20),
        Scale::Small => c(10, 3, 800, 2000, 2500, 3000, 200, 1200, 300),
        Scale::Medium => c(40, 5, 20_000, 50_000, 60_000, 70_000, 2000, 40_000, 8000),
        Scale::Large => c(
            150, 8, 80_000, 200_000, 250_000, 300_000, 5000, 150_000, 30_000,
        ),
    }
}

/// Add time of record `i` of `n`: evenly spread over the span with jitter inside its slot,
/// so add time never decreases with the id.
fn add_time_for(rng: &mut Rng, i: u64, n: u64) -> Ms {
    let slot = SPAN_MS / n.max(1) as i64;
    ANCHOR_MS - SPAN_MS + slot * i as i64 + rng.range(0, slot.max(1))
}

/// A later update time, biased towards the recent past so incremental syncs see activity.
fn update_after(rng: &mut Rng, add: Ms) -> Ms {
    if rng.chance(0.25) {
        return add;
    }
    let room = ANCHOR_MS - 1000 - add;
    if room <= 0 {
        return add;
    }
    let u = rng.unit().sqrt();
    (add + (room as f64 * u) as i64) / 1000 * 1000
}

fn secs(t: Ms) -> Ms {
    t / 1000 * 1000
}

pub fn gen_addr(rng: &mut Rng) -> Addr {
    let (city, admin1, country, postal) = *rng.pick(CITIES);
    Addr {
        street_number: rng.range(1, 200).to_string().into(),
        route: (*rng.pick(STREETS)).into(),
        subpremise: rng
            .chance(0.3)
            .then(|| format!("{}", rng.range(1, 40)).into()),
        sublocality: None,
        locality: city.into(),
        admin_area_level_1: admin1.into(),
        admin_area_level_2: None,
        country: country.into(),
        postal_code: postal.into(),
    }
}

fn labels(rng: &mut Rng, max: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (1..=max).filter(|_| rng.chance(0.2)).collect();
    v.dedup();
    v
}

pub fn generate(opts: &SimOptions) -> Db {
    let seed = opts.seed;
    let c = counts(opts.scale);
    let seats = opts.seats.map(|s| s.max(1) as u64).unwrap_or(c.users);
    let mut r = Rng::for_item(seed, "company", 0);
    let company_id = 10_000_000 + r.below(89_999_999);
    let company_name = format!("{} {}", r.pick(ORG_A), r.pick(ORG_B));
    let domain = format!(
        "{}-{}",
        company_name
            .split(' ')
            .next()
            .unwrap_or("company")
            .to_lowercase(),
        r.hex(6)
    );

    // Users: one per seat; user 1 owns the API token and is an admin.
    let users: Vec<User> = (0..seats)
        .map(|i| {
            let mut r = Rng::for_item(seed, "user", i);
            let add = ANCHOR_MS - SPAN_MS - DAY_MS * 30 + (i as i64) * DAY_MS;
            let first = *r.pick(FIRST);
            let last = *r.pick(LAST);
            User {
                id: i + 1,
                name: format!("{first} {last}").into(),
                email: format!(
                    "{}.{}{}@{}.example.com",
                    ascii(first),
                    ascii(last),
                    i + 1,
                    domain
                )
                .into(),
                phone: r
                    .chance(0.5)
                    .then(|| format!("+372 5{:07}", r.below(9_999_999)).into()),
                is_admin: i == 0 || r.chance(0.2),
                active: i == 0 || !r.chance(0.1),
                locale: r.pick_s(&["en_US", "et_EE", "de_DE"]),
                timezone: r.below(TIMEZONES.len() as u64) as u8,
                default_currency: r.pick_s(DEAL_CURRENCIES),
                role_id: 1 + r.below(2),
                add_time: add,
                update_time: secs(add + r.range(0, SPAN_MS / 2)),
                last_login: secs(ANCHOR_MS - r.range(DAY_MS / 24, 20 * DAY_MS)),
                deleted_time: None,
            }
        })
        .collect();
    let nusers = users.len() as u64;
    let pick_user = |r: &mut Rng| 1 + r.below(nusers);

    // Pipelines and stages.
    let mut pipelines = Vec::new();
    let mut stages = Vec::new();
    for p in 0..c.pipelines {
        let mut r = Rng::for_item(seed, "pipeline", p);
        let add = ANCHOR_MS - SPAN_MS - DAY_MS * 20 + p as i64 * DAY_MS;
        pipelines.push(Pipeline {
            id: p + 1,
            name: if p == 0 {
                "Sales".into()
            } else {
                format!("Pipeline {}", p + 1).into()
            },
            order_nr: p as u32 + 1,
            probability_enabled: r.chance(0.5),
            add_time: add,
            update_time: secs(add + r.range(0, SPAN_MS)),
            deleted_time: None,
        });
        let names = [
            "Qualified",
            "Contact made",
            "Demo scheduled",
            "Proposal made",
            "Negotiation",
        ];
        let ns = 4 + r.below(2) as usize;
        for (k, name) in names.iter().take(ns).enumerate() {
            let sid = stages.len() as u64 + 1;
            stages.push(Stage {
                id: sid,
                pipeline_id: p + 1,
                name: (*name).into(),
                order_nr: k as u32 + 1,
                probability: (100 * (k as u32 + 1) / (ns as u32 + 1)).min(100),
                rotten_days: r.chance(0.3).then(|| 7 + r.below(30) as u32),
                add_time: add + k as i64 * 1000,
                update_time: secs(add + k as i64 * 1000 + r.range(0, SPAN_MS)),
                deleted_time: None,
            });
        }
    }
    let stage_by_pipeline: Vec<Vec<u64>> = pipelines
        .iter()
        .map(|p| {
            stages
                .iter()
                .filter(|s| s.pipeline_id == p.id)
                .map(|s| s.id)
                .collect()
        })
        .collect();

    let orgs: Vec<Org> = (0..c.orgs)
        .map(|i| {
            let mut r = Rng::for_item(seed, "organization", i);
            let add = add_time_for(&mut r, i, c.orgs);
            let name = format!("{} {} {}", r.pick(ORG_A), r.pick(ORG_B), i + 1);
            let deleted = (add < ANCHOR_MS - 31 * DAY_MS && (r.chance(0.02) || i % 23 == 7))
                .then(|| secs(ANCHOR_MS - r.range(DAY_MS, 29 * DAY_MS)));
            Org {
                id: i + 1,
                owner_id: pick_user(&mut r),
                address: r.chance(0.8).then(|| Box::new(gen_addr(&mut r))),
                visible_to: *r.pick(&[3u8, 3, 7]),
                label_ids: labels(&mut r, 3),
                website: r.chance(0.6).then(|| {
                    format!("https://www.{}.example.com", ascii(&name).replace(' ', "-")).into()
                }),
                industry: r.chance(0.5).then(|| 1 + r.below(20) as u32),
                annual_revenue: r.chance(0.4).then(|| r.range(10_000, 50_000_000)),
                employee_count: r.chance(0.5).then(|| r.range(1, 5000)),
                name: name.into(),
                add_time: add,
                update_time: deleted.unwrap_or_else(|| update_after(&mut r, add)),
                deleted_time: deleted,
                cf: Cf {
                    generated: true,
                    over: None,
                },
            }
        })
        .collect();

    let persons: Vec<Person> = (0..c.persons)
        .map(|i| {
            let mut r = Rng::for_item(seed, "person", i);
            let add = add_time_for(&mut r, i, c.persons);
            let first = *r.pick(FIRST);
            let last = *r.pick(LAST);
            let ne = r.below(3) + if r.chance(0.9) { 1 } else { 0 };
            let emails = (0..ne)
                .map(|k| Contact {
                    value: format!(
                        "{}.{}{}@{}",
                        ascii(first),
                        ascii(last),
                        i + 1,
                        ["work.example.com", "mail.example.org", "example.net"][k as usize % 3]
                    )
                    .into(),
                    label: ["work", "home", "other"][k as usize % 3],
                    primary: k == 0,
                })
                .collect();
            let np = r.below(4);
            let phones = (0..np)
                .map(|k| Contact {
                    value: format!("+{} {}", 1 + r.below(400), 1_000_000 + r.below(8_999_999))
                        .into(),
                    label: ["work", "mobile", "home", "other"][k as usize % 4],
                    primary: k == 0,
                })
                .collect();
            let deleted = (add < ANCHOR_MS - 31 * DAY_MS && (r.chance(0.02) || i % 23 == 7))
                .then(|| secs(ANCHOR_MS - r.range(DAY_MS, 29 * DAY_MS)));
            Person {
                id: i + 1,
                first_name: first.into(),
                last_name: last.into(),
                owner_id: pick_user(&mut r),
                org_id: (c.orgs > 0 && r.chance(0.85)).then(|| 1 + r.below(c.orgs)),
                emails,
                phones,
                visible_to: *r.pick(&[3u8, 3, 7]),
                label_ids: labels(&mut r, 3),
                job_title: r.chance(0.5).then(|| (*r.pick(JOBS)).into()),
                birthday: r
                    .chance(0.2)
                    .then(|| days_of(ANCHOR_MS) - r.range(20 * 365, 60 * 365) as i32),
                postal_address: r.chance(0.3).then(|| Box::new(gen_addr(&mut r))),
                add_time: add,
                update_time: deleted.unwrap_or_else(|| update_after(&mut r, add)),
                deleted_time: deleted,
                cf: Cf {
                    generated: true,
                    over: None,
                },
            }
        })
        .collect();

    let products: Vec<Product> = (0..c.products)
        .map(|i| {
            let mut r = Rng::for_item(seed, "product", i);
            let add = add_time_for(&mut r, i, c.products);
            let base = r.range(5, 5000) as f64;
            let np = 1 + r.below(3) as usize;
            let prices = DEAL_CURRENCIES
                .iter()
                .take(np)
                .enumerate()
                .map(|(k, cur)| Price {
                    currency: (*cur).into(),
                    price: base * [1.0, 1.1, 0.9][k % 3],
                    cost: (base * 0.6).round(),
                    direct_cost: (base * 0.3).round(),
                })
                .collect();
            let recurring = r.chance(0.3);
            let deleted = (add < ANCHOR_MS - 31 * DAY_MS && (r.chance(0.02) || i % 23 == 7))
                .then(|| secs(ANCHOR_MS - r.range(DAY_MS, 29 * DAY_MS)));
            Product {
                id: i + 1,
                name: format!("{} {} {}", r.pick(PRODUCT_ADJ), r.pick(PRODUCTS), i + 1).into(),
                code: format!("SKU-{:05}", i + 1).into(),
                unit: (*r.pick(&["pcs", "h", "license", ""])).into(),
                tax: *r.pick(&[0.0, 20.0, 22.0, 9.0]),
                description: r.chance(0.5).then(|| "Seeded product description".into()),
                category: r
                    .chance(0.5)
                    .then(|| (*r.pick(&["Hardware", "Software", "Services"])).into()),
                owner_id: pick_user(&mut r),
                visible_to: *r.pick(&[3u8, 7]),
                is_linkable: true,
                billing_frequency: if recurring {
                    r.pick_s(&["monthly", "annually"])
                } else {
                    "one-time"
                },
                billing_frequency_cycles: (recurring && r.chance(0.5)).then_some(12),
                prices,
                add_time: add,
                update_time: deleted.unwrap_or_else(|| update_after(&mut r, add)),
                deleted_time: deleted,
                cf: Cf {
                    generated: true,
                    over: None,
                },
            }
        })
        .collect();

    let lead_labels: Vec<LeadLabel> = ["Hot", "Warm", "Cold", "Partner", "Inbound"]
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut r = Rng::for_item(seed, "lead_label", k as u64);
            let add = ANCHOR_MS - SPAN_MS + k as i64 * 3_600_000 + r.range(0, 999);
            LeadLabel {
                seq: k as u32 + 1,
                id: r.uuid().to_string().into(),
                name: (*name).into(),
                color: ["red", "yellow", "blue", "green", "purple"][k],
                add_time: add,
                update_time: add,
            }
        })
        .collect();

    let mut leads: Vec<Lead> = (0..c.leads)
        .map(|i| {
            let mut r = Rng::for_item(seed, "lead", i);
            let add = add_time_for(&mut r, i, c.leads);
            let archived = r.chance(0.08) || i % 11 == 5;
            let update = update_after(&mut r, add) + r.range(0, 999);
            let archive_time = archived.then_some(update);
            let person_id = (c.persons > 0 && r.chance(0.8)).then(|| 1 + r.below(c.persons));
            Lead {
                id: i + 1,
                uuid: r.uuid().to_string().into(),
                title: format!("{} lead", r.pick(ORG_A)).into(),
                owner_id: pick_user(&mut r),
                creator_id: pick_user(&mut r),
                label_ids: (1..=lead_labels.len() as u32)
                    .filter(|_| r.chance(0.25))
                    .collect(),
                person_id,
                org_id: (c.orgs > 0 && (person_id.is_none() || r.chance(0.5)))
                    .then(|| 1 + r.below(c.orgs)),
                source_name: r.pick_s(&[
                    "Manually created",
                    "Web forms",
                    "API",
                    "Import",
                    "Live chat",
                ]),
                origin: r.pick_s(&["ManuallyCreated", "API", "Import", "WebForms"]),
                was_seen: r.chance(0.7),
                value: r.chance(0.7).then(|| {
                    (
                        r.range(100, 50_000) as f64,
                        (*r.pick(DEAL_CURRENCIES)).into(),
                    )
                }),
                expected_close_date: r
                    .chance(0.4)
                    .then(|| days_of(add) + r.range(10, 200) as i32),
                visible_to: *r.pick(&[3u8, 7]),
                archive_time,
                add_time: add,
                update_time: update,
                deleted_time: None,
                cf: Cf {
                    generated: true,
                    over: None,
                },
            }
        })
        .collect();
    leads.sort_by_key(|l| l.id);

    let deals: Vec<Deal> = (0..c.deals)
        .map(|i| gen_deal(seed, &c, i, nusers, &stage_by_pipeline))
        .collect();

    let activities: Vec<Activity> = (0..c.activities)
        .map(|i| {
            let mut r = Rng::for_item(seed, "activity", i);
            let add = add_time_for(&mut r, i, c.activities);
            let (key, name) = *r.pick(ACTIVITY_TYPES);
            let deal_id = (c.deals > 0 && r.chance(0.6)).then(|| 1 + r.below(c.deals));
            let lead_id = (deal_id.is_none() && !leads.is_empty() && r.chance(0.2))
                .then(|| leads[r.below(leads.len() as u64) as usize].uuid.clone());
            let person_id = (c.persons > 0 && r.chance(0.7)).then(|| 1 + r.below(c.persons));
            let due = days_of(add) + r.range(-2, 60) as i32;
            let done = due < days_of(ANCHOR_MS) && r.chance(0.7);
            let mut update = update_after(&mut r, add);
            let marked = done.then(|| {
                let t = secs(add + r.range(0, (ANCHOR_MS - add).max(1)));
                update = update.max(t);
                t
            });
            let deleted = (add < ANCHOR_MS - 31 * DAY_MS && (r.chance(0.02) || i % 23 == 7))
                .then(|| secs(ANCHOR_MS - r.range(DAY_MS, 29 * DAY_MS)));
            Activity {
                id: i + 1,
                subject: format!("{name} with {}", r.pick(LAST)).into(),
                type_key: key.into(),
                owner_id: pick_user(&mut r),
                creator_user_id: pick_user(&mut r),
                deal_id,
                lead_id,
                person_id,
                org_id: (c.orgs > 0 && r.chance(0.5)).then(|| 1 + r.below(c.orgs)),
                due_date: Some(due),
                due_time: r
                    .chance(0.7)
                    .then(|| (8 + r.below(10) as u32) * 3600 + 15 * 60 * r.below(4) as u32),
                duration: r.chance(0.6).then(|| 900 * (1 + r.below(8) as u32)),
                busy: r.chance(0.5),
                done,
                marked_as_done_time: marked,
                priority: r.chance(0.3).then(|| r.below(3) as u32 + 1),
                note: r.chance(0.4).then(|| "<p>Seeded activity note</p>".into()),
                public_description: r.chance(0.2).then(|| "Agenda attached".into()),
                location: r.chance(0.15).then(|| Box::new(gen_addr(&mut r))),
                add_time: add,
                update_time: deleted.unwrap_or(update),
                deleted_time: deleted,
            }
        })
        .collect();

    let notes: Vec<Note> = (0..c.notes)
        .map(|i| {
            let mut r = Rng::for_item(seed, "note", i);
            let add = add_time_for(&mut r, i, c.notes);
            let target = r.below(4);
            let deal_id = (target == 0 && c.deals > 0).then(|| 1 + r.below(c.deals));
            let person_id = (target == 1 && c.persons > 0).then(|| 1 + r.below(c.persons));
            let org_id = (target == 2 && c.orgs > 0).then(|| 1 + r.below(c.orgs));
            let lead_id = (target == 3 && !leads.is_empty())
                .then(|| leads[r.below(leads.len() as u64) as usize].uuid.clone());
            let user_id = pick_user(&mut r);
            let deleted = (add < ANCHOR_MS - 31 * DAY_MS && (r.chance(0.02) || i % 23 == 7))
                .then(|| secs(ANCHOR_MS - r.range(DAY_MS, 29 * DAY_MS)));
            Note {
                id: i + 1,
                content: format!("<p>Call summary #{}: {}</p>", i + 1, r.pick(DEAL_WORDS)).into(),
                user_id,
                last_update_user_id: user_id,
                pinned_to_deal: deal_id.is_some() && r.chance(0.1),
                pinned_to_person: person_id.is_some() && r.chance(0.1),
                pinned_to_org: org_id.is_some() && r.chance(0.1),
                pinned_to_lead: lead_id.is_some() && r.chance(0.1),
                deal_id,
                person_id,
                org_id,
                lead_id,
                add_time: add,
                update_time: deleted.unwrap_or_else(|| update_after(&mut r, add)),
                deleted_time: deleted,
            }
        })
        .collect();

    // Deal products: 0-3 attachments per deal, ids in deal order.
    let mut deal_products = Vec::new();
    if !products.is_empty() {
        for d in &deals {
            let mut r = Rng::for_item(seed, "deal_product", d.id);
            for k in 0..r.below(4) {
                let p = &products[r.below(products.len() as u64) as usize];
                let id = deal_products.len() as u64 + 1;
                deal_products.push(DealProduct {
                    id,
                    deal_id: d.id,
                    product_id: p.id,
                    name: p.name.clone(),
                    order_nr: k as u32 + 1,
                    item_price: p.prices[0].price,
                    quantity: 1.0 + r.below(10) as f64,
                    discount: *r.pick(&[0.0, 0.0, 5.0, 10.0]),
                    tax: p.tax,
                    currency: d.currency.clone(),
                    billing_frequency: p.billing_frequency,
                    billing_start_date: (p.billing_frequency != "one-time")
                        .then(|| days_of(d.add_time)),
                    add_time: d.add_time,
                    update_time: d.add_time,
                    deleted_time: None,
                });
            }
        }
    }

    let activity_types = ACTIVITY_TYPES
        .iter()
        .enumerate()
        .map(|(k, (key, name))| ActivityType {
            id: k as u64 + 1,
            name,
            key,
            icon: key,
            color: "FFFFFF",
            order_nr: k as u32 + 1,
            is_custom: false,
            add_time: ANCHOR_MS - SPAN_MS - 40 * DAY_MS,
            update_time: ANCHOR_MS - SPAN_MS - 40 * DAY_MS,
        })
        .collect();
    let currencies = CURRENCIES
        .iter()
        .enumerate()
        .map(|(k, (code, name, symbol))| Currency {
            id: k as u64 + 1,
            code,
            name,
            symbol,
            decimals: if *code == "JPY" { 0 } else { 2 },
        })
        .collect();
    let filter_defs = [
        ("All open deals", "deals"),
        ("My deals", "deals"),
        ("Won this year", "deals"),
        ("Hot leads", "leads"),
        ("Key accounts", "org"),
        ("Decision makers", "people"),
        ("Hardware", "products"),
        ("Overdue calls", "activity"),
        ("Active projects", "projects"),
    ];
    let filters = filter_defs
        .iter()
        .enumerate()
        .map(|(k, (name, kind))| {
            let mut r = Rng::for_item(seed, "filter", k as u64);
            let add = ANCHOR_MS - SPAN_MS + r.range(0, SPAN_MS);
            Filter {
                id: k as u64 + 1,
                name: (*name).into(),
                kind,
                user_id: pick_user(&mut r),
                add_time: secs(add),
                update_time: secs(add + r.range(0, ANCHOR_MS - add)),
            }
        })
        .collect();

    let (fields, next_field_id, next_option_id) = crate::fields::seed_fields(seed);
    let lead_by_uuid = leads.iter().map(|l| (l.uuid.clone(), l.id)).collect();
    let _ = ORIGINS;
    let mut db = Db {
        seed,
        company: Company {
            id: company_id,
            name: company_name,
            domain,
        },
        users: Table::new(users),
        pipelines: Table::new(pipelines),
        stages: Table::new(stages),
        deals: Table::new(deals),
        persons: Table::new(persons),
        orgs: Table::new(orgs),
        activities: Table::new(activities),
        products: Table::new(products),
        notes: Table::new(notes),
        leads: Table::new(leads),
        deal_products: DealProducts::new(deal_products),
        simple: Simple {
            lead_labels,
            activity_types,
            currencies,
            filters,
        },
        fields,
        next_field_id,
        next_option_id,
        deal_changes: HashMap::new(),
        next_change_id: 1_000_000,
        lead_by_uuid,
        scale: opts.scale,
        seed_stages: stage_by_pipeline,
        seed_users: nusers,
        extra: Default::default(),
        webhooks: Default::default(),
        webhook_outbox: Default::default(),
    };
    db.extra = derive_extra(&db);
    db
}

/// Seeded deal history, oldest first: `(time, field, old, new)`. The deal's stored state is
/// the result of replaying it, so `/deals/{id}/flow` and the deal always agree.
pub struct DealEvent {
    pub time: Ms,
    pub field: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
    pub user_id: u64,
}

struct DealPlan {
    deal: Deal,
    events: Vec<DealEvent>,
}

fn plan_deal(seed: u64, c: &Counts, i: u64, nusers: u64, stages: &[Vec<u64>]) -> DealPlan {
    let mut r = Rng::for_item(seed, "deal", i);
    let add = add_time_for(&mut r, i, c.deals);
    let owner = 1 + r.below(nusers);
    let pi = r.below(stages.len() as u64) as usize;
    let pst = &stages[pi];
    let final_stage_idx = r.below(pst.len() as u64) as usize;
    let mut events = Vec::new();
    let mut t = secs(add);
    let room = (ANCHOR_MS - 40 * DAY_MS - add).max(DAY_MS);
    let step = room / (final_stage_idx as i64 + 3);
    for k in 1..=final_stage_idx {
        t = secs(t + r.range(step / 4, step.max(2)));
        events.push(DealEvent {
            time: t,
            field: "stage_id",
            old: Some(pst[k - 1].to_string()),
            new: Some(pst[k].to_string()),
            user_id: owner,
        });
    }
    let stage_change_time = (final_stage_idx > 0).then_some(t);
    let roll = r.unit();
    let status = if roll < 0.5 {
        DealStatus::Open
    } else if roll < 0.8 {
        DealStatus::Won
    } else {
        DealStatus::Lost
    };
    let value = (r.range(5, 2000) * 100) as f64;
    let mut won_time = None;
    let mut lost_time = None;
    let mut close_time = None;
    if status != DealStatus::Open {
        t = secs(t + r.range(DAY_MS / 4, step.max(DAY_MS / 4 + 1))).min(ANCHOR_MS - 1000);
        events.push(DealEvent {
            time: t,
            field: "status",
            old: Some("open".into()),
            new: Some(status.name().into()),
            user_id: owner,
        });
        close_time = Some(t);
        if status == DealStatus::Won {
            won_time = Some(t);
        } else {
            lost_time = Some(t);
        }
    }
    let mut final_value = value;
    if r.chance(0.3) {
        t = secs(t + r.range(1000, DAY_MS * 10)).min(ANCHOR_MS - 1000);
        final_value = value + 100.0 * r.range(1, 50) as f64;
        events.push(DealEvent {
            time: t,
            field: "value",
            old: Some(fmt_num(value)),
            new: Some(fmt_num(final_value)),
            user_id: owner,
        });
    }
    let mut archive_time = None;
    let mut deleted_time = None;
    let mut fate = r.unit();
    // A few fixed positions guarantee deleted and archived deals even at tiny scale.
    if i % 17 == 3 {
        fate = 0.0;
    } else if i % 19 == 4 {
        fate = 0.05;
    }
    if fate < 0.03 && add < ANCHOR_MS - 60 * DAY_MS {
        let dt = secs(ANCHOR_MS - r.range(DAY_MS, 29 * DAY_MS));
        t = t.max(dt);
        deleted_time = Some(t);
        events.push(DealEvent {
            time: t,
            field: "status",
            old: Some(status.name().into()),
            new: Some("deleted".into()),
            user_id: owner,
        });
    } else if fate < 0.07 {
        t = secs(t + r.range(1000, DAY_MS * 20))
            .min(ANCHOR_MS - 1000)
            .max(t);
        archive_time = Some(t);
        events.push(DealEvent {
            time: t,
            field: "is_archived",
            old: Some("false".into()),
            new: Some("true".into()),
            user_id: owner,
        });
    }
    let probability = r.chance(0.3).then(|| 10 * r.below(11) as u32);
    let deal = Deal {
        id: i + 1,
        title: format!("{} {} {}", r.pick(ORG_A), r.pick(DEAL_WORDS), i + 1).into(),
        creator_user_id: owner,
        owner_id: owner,
        person_id: (c.persons > 0 && r.chance(0.9)).then(|| 1 + r.below(c.persons)),
        org_id: (c.orgs > 0 && r.chance(0.8)).then(|| 1 + r.below(c.orgs)),
        pipeline_id: pi as u64 + 1,
        stage_id: pst[final_stage_idx],
        value: final_value,
        currency: (*r.pick(DEAL_CURRENCIES)).into(),
        add_time: secs(add),
        update_time: t,
        stage_change_time,
        status,
        probability,
        lost_reason: (status == DealStatus::Lost).then(|| (*r.pick(LOST_REASONS)).into()),
        visible_to: *r.pick(&[3u8, 3, 7]),
        won_time,
        lost_time,
        close_time,
        expected_close_date: r
            .chance(0.6)
            .then(|| days_of(add) + r.range(14, 180) as i32),
        label_ids: labels(&mut r, 4),
        origin: r.pick_s(ORIGINS),
        archive_time,
        deleted_time,
        cf: Cf {
            generated: true,
            over: None,
        },
    };
    DealPlan { deal, events }
}

fn gen_deal(seed: u64, c: &Counts, i: u64, nusers: u64, stages: &[Vec<u64>]) -> Deal {
    plan_deal(seed, c, i, nusers, stages).deal
}

/// Re-derives the seeded history of deal `id` (1-based) for the flow endpoint.
pub fn deal_events(db: &Db, id: u64) -> Vec<DealEvent> {
    let c = counts(db.scale);
    if id == 0 || id > c.deals {
        return Vec::new();
    }
    plan_deal(db.seed, &c, id - 1, db.seed_users, &db.seed_stages).events
}

/// Lower-case ASCII form of a name for e-mail addresses and URLs.
pub fn ascii(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            Some(match c {
                'ä' | 'á' | 'à' | 'â' | 'Ä' | 'Á' => 'a',
                'ö' | 'ó' | 'ò' | 'ô' | 'Ö' | 'Ó' => 'o',
                'ü' | 'ú' | 'ù' | 'Ü' => 'u',
                'é' | 'è' | 'ë' | 'ê' | 'É' => 'e',
                'í' | 'ì' | 'ï' => 'i',
                'ñ' => 'n',
                'ç' => 'c',
                'ł' | 'Ł' => 'l',
                'õ' | 'Õ' => 'o',
                'š' | 'Š' => 's',
                'ž' | 'Ž' => 'z',
                '\'' | ' ' => '-',
                c if c.is_ascii_alphanumeric() || c == '.' || c == '-' => c,
                _ => return None,
            })
        })
        .collect::<String>()
        .to_lowercase()
}

/// The seeded value of custom field `f` on record `rec_id`, or `None` if it is empty.
pub fn gen_cf(db: &Db, entity: FieldEntity, rec_id: u64, f: &FieldDef) -> Option<CfVal> {
    let ct = f.cf?;
    if !f.generated {
        return None;
    }
    let mut r = cf_rng(db.seed, entity, rec_id, f.id);
    if !r.chance(0.7) {
        return None;
    }
    let nusers = db.users.rows.len() as u64;
    // Linked records are drawn from the seeded ones: counting the live rows instead would
    // change every seeded link whenever a record is created, merged away or purged.
    let seeded = counts(db.scale);
    Some(match ct {
        CfType::Varchar | CfType::VarcharAuto => {
            CfVal::Str(format!("{} {}", r.pick(PRODUCT_ADJ), r.pick(DEAL_WORDS)).into())
        }
        CfType::Text => CfVal::Str(format!("Long text for record {rec_id}.\nSecond line.").into()),
        CfType::Double => CfVal::Num(r.range(0, 100_000) as f64 / 100.0),
        CfType::Monetary => CfVal::Money(
            r.range(100, 100_000) as f64,
            (*r.pick(DEAL_CURRENCIES)).into(),
        ),
        CfType::Enum => CfVal::Opt(r.pick(&f.options).0),
        CfType::Set => {
            let mut v: Vec<u32> = f
                .options
                .iter()
                .filter(|_| r.chance(0.4))
                .map(|o| o.0)
                .collect();
            if v.is_empty() {
                v.push(f.options[0].0);
            }
            CfVal::Set(v)
        }
        CfType::User => CfVal::Id(1 + r.below(nusers.max(1))),
        CfType::Org => CfVal::Id(1 + r.below(seeded.orgs.max(1))),
        CfType::People => CfVal::Id(1 + r.below(seeded.persons.max(1))),
        CfType::Phone => CfVal::Str(format!("+1 555 {:04}", r.below(10_000)).into()),
        CfType::Time => CfVal::Time(
            r.below(24 * 4) as u32 * 900,
            r.below(TIMEZONES.len() as u64) as u8,
        ),
        CfType::TimeRange => {
            let s = r.below(20 * 4) as u32 * 900;
            CfVal::TimeRange(
                s,
                s + 900 * (1 + r.below(12) as u32),
                r.below(TIMEZONES.len() as u64) as u8,
            )
        }
        CfType::Date => CfVal::Date(days_of(ANCHOR_MS) - r.range(0, 4 * 365) as i32),
        CfType::DateRange => {
            let s = days_of(ANCHOR_MS) - r.range(0, 4 * 365) as i32;
            CfVal::DateRange(s, s + r.range(1, 60) as i32)
        }
        CfType::Address => CfVal::Addr(Box::new(gen_addr(&mut r))),
    })
}

/// Current value of a custom field on a record (override, else seeded).
pub fn cf_value(db: &Db, entity: FieldEntity, rec_id: u64, cf: &Cf, f: &FieldDef) -> Option<CfVal> {
    if let Some(v) = cf.overridden(f.id) {
        return v.clone();
    }
    if cf.generated {
        gen_cf(db, entity, rec_id, f)
    } else {
        None
    }
}

/// One change of a deal's history: the seeded events, then the changes made through the API.
pub struct FlowItem {
    pub id: u64,
    pub time: Ms,
    pub user_id: u64,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub source: &'static str,
}

pub fn flow_items(db: &Db, deal_id: u64) -> Vec<FlowItem> {
    let mut v: Vec<FlowItem> = deal_events(db, deal_id)
        .into_iter()
        .enumerate()
        .map(|(k, e)| FlowItem {
            id: deal_id * 100 + k as u64,
            time: e.time,
            user_id: e.user_id,
            field: e.field.to_string(),
            old: e.old,
            new: e.new,
            source: "app",
        })
        .collect();
    if let Some(ch) = db.deal_changes.get(&deal_id) {
        v.extend(ch.iter().map(|c| FlowItem {
            id: c.id,
            time: c.time,
            user_id: c.user_id,
            field: c.field_key.to_string(),
            old: c.old_value.clone(),
            new: c.new_value.clone(),
            source: "api",
        }));
    }
    v.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    v
}

fn derive_extra(db: &Db) -> Extra {
    let seed = db.seed;
    let mut x = Extra::default();
    for d in db.deals.rows.iter().filter(|d| d.id % 10 == 1) {
        let mut r = Rng::for_item(seed, "file", d.id);
        let id = x.files.len() as u64 + 1;
        x.files.push(File {
            id,
            user_id: d.owner_id,
            deal_id: d.id,
            person_id: d.person_id,
            org_id: d.org_id,
            name: format!(
                "{}.pdf",
                ["proposal", "contract", "invoice", "notes"][r.below(4) as usize]
            ),
            size: 10_000 + r.below(5_000_000),
            add_time: d.add_time + 60_000,
        });
    }
    for a in db
        .activities
        .rows
        .iter()
        .filter(|a| &*a.type_key == "call" && a.id % 2 == 0)
    {
        let mut r = Rng::for_item(seed, "call_log", a.id);
        x.call_logs.push(CallLog {
            id: format!("CA{}", r.hex(30)),
            activity_id: a.id,
            user_id: a.owner_id,
            person_id: a.person_id,
            org_id: a.org_id,
            deal_id: a.deal_id,
            outcome: r.pick_s(&[
                "connected",
                "no_answer",
                "left_message",
                "busy",
                "wrong_number",
            ]),
            duration: r.below(1800) as u32,
            start: a.add_time + 3_600_000,
            to: format!("+372 5{:07}", r.below(9_999_999)),
        });
    }
    x.call_logs.sort_by(|a, b| a.id.cmp(&b.id));
    for d in db.deals.rows.iter().filter(|d| d.id % 5 == 2) {
        let mut r = Rng::for_item(seed, "mail_thread", d.id);
        let first = d.add_time + r.range(60_000, DAY_MS);
        let id = x.threads.len() as u64 + 1;
        x.threads.push(MailThread {
            id,
            user_id: d.owner_id,
            deal_id: d.id,
            person_id: d.person_id,
            folder: r.pick_s(&["inbox", "inbox", "sent", "archive"]),
            subject: format!("Re: {}", d.title),
            messages: 1 + r.below(3) as u32,
            first,
            last: first + r.range(0, 5 * DAY_MS),
        });
    }
    for d in db.deals.rows.iter().filter(|d| d.id % 20 == 3) {
        let mut r = Rng::for_item(seed, "project", d.id);
        let id = x.projects.len() as u64 + 1;
        let add = d.add_time + r.range(DAY_MS, 10 * DAY_MS);
        let add = add.min(crate::util::ANCHOR_MS - 1000);
        let archived = id.is_multiple_of(3);
        x.projects.push(Project {
            id,
            title: format!("Onboarding: {}", d.title),
            owner_id: d.owner_id,
            deal_id: d.id,
            person_id: d.person_id,
            org_id: d.org_id,
            status: if r.chance(0.6) { "open" } else { "completed" },
            phase_id: 1 + r.below(3),
            start: days_of(add),
            end: days_of(add) + r.range(14, 120) as i32,
            add_time: add,
            update_time: add + r.range(0, (crate::util::ANCHOR_MS - add).max(1)),
            archive_time: archived.then_some(add + DAY_MS),
        });
        for k in 0..3u64 {
            let tid = x.tasks.len() as u64 + 1;
            let done = r.chance(0.5).then_some(add + (k as i64 + 1) * DAY_MS);
            x.tasks.push(Task {
                id: tid,
                project_id: id,
                title: ["Kick-off call", "Configure account", "Training session"][k as usize]
                    .to_string(),
                creator_id: d.owner_id,
                assignee: d.owner_id,
                done,
                due: days_of(add) + 7 * (k as i32 + 1),
                add_time: add + k as i64 * 1000,
            });
        }
    }
    x
}
