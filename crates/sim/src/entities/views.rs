//! Pieces the entities' serde views share: numbers written as Pipedrive writes them, times,
//! addresses, contacts and the v2 `custom_fields` object.

use crate::model::{Addr, Cf, CfVal, Contact, Db, FieldDef, FieldEntity, TIMEZONES};
use crate::seed::cf_value;
use crate::util::{Ms, date, hms, rfc3339};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Per-request options of v2 list/get endpoints that change the rendered shape.
#[derive(Default, Clone)]
pub struct V2Opts {
    /// `custom_fields=` restriction.
    pub cf_keys: Option<Vec<String>>,
    pub option_labels: bool,
    pub include_fields: Vec<String>,
}

/// A number as the API writes it: whole values without a fraction (`100`, not `100.0`), a
/// non-finite one as `null`.
pub fn num<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    let v = *v;
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        s.serialize_i64(v as i64)
    } else if v.is_finite() {
        s.serialize_f64(v)
    } else {
        s.serialize_unit()
    }
}

/// [`num`] of a value that may be missing (`null`).
pub fn opt_num<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => num(v, s),
        None => s.serialize_unit(),
    }
}

/// v2 time: RFC 3339 without fractions.
pub fn t2(ms: Ms) -> String {
    rfc3339(ms)
}

pub fn ot2(ms: Option<Ms>) -> Option<String> {
    ms.map(rfc3339)
}

pub fn odate(d: Option<i32>) -> Option<String> {
    d.map(date)
}

/// A v2 address: the parts an address lacks are left out, not null.
#[derive(Serialize)]
pub struct AddrV2<'a> {
    value: String,
    country: &'a str,
    admin_area_level_1: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_area_level_2: Option<&'a str>,
    locality: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sublocality: Option<&'a str>,
    route: &'a str,
    street_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subpremise: Option<&'a str>,
    postal_code: &'a str,
}

impl<'a> AddrV2<'a> {
    pub fn of(a: &'a Addr) -> Self {
        AddrV2 {
            value: a.formatted(),
            country: &a.country,
            admin_area_level_1: &a.admin_area_level_1,
            admin_area_level_2: a.admin_area_level_2.as_deref(),
            locality: &a.locality,
            sublocality: a.sublocality.as_deref(),
            route: &a.route,
            street_number: &a.street_number,
            subpremise: a.subpremise.as_deref(),
            postal_code: &a.postal_code,
        }
    }

    pub fn of_opt(a: Option<&'a Addr>) -> Option<Self> {
        a.map(AddrV2::of)
    }
}

/// A v2 email or phone.
#[derive(Serialize)]
pub struct ContactV2<'a> {
    value: &'a str,
    primary: bool,
    label: &'a str,
}

pub fn contacts_v2(v: &[Contact]) -> Vec<ContactV2<'_>> {
    v.iter()
        .map(|c| ContactV2 {
            value: &c.value,
            primary: c.primary,
            label: c.label,
        })
        .collect()
}

/// Keys a request adds with `include_fields`, in the order it asked for them.
pub struct Included(pub Vec<(&'static str, serde_json::Value)>);

impl Serialize for Included {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The v2 `custom_fields` object: every active custom field of the entity (or those the
/// request names in `custom_fields=`), `null` when the record has no value.
pub struct CustomFieldsV2<'a> {
    pub db: &'a Db,
    pub entity: FieldEntity,
    pub id: u64,
    pub cf: &'a Cf,
    pub opts: &'a V2Opts,
}

impl Serialize for CustomFieldsV2<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for f in self.db.custom_fields(self.entity) {
            if let Some(keys) = &self.opts.cf_keys
                && !keys.contains(&f.key)
            {
                continue;
            }
            match cf_value(self.db, self.entity, self.id, self.cf, f) {
                None => m.serialize_entry(&f.key, &())?,
                Some(v) => m.serialize_entry(
                    &f.key,
                    &CfValueV2 {
                        field: f,
                        value: &v,
                        labels: self.opts.option_labels,
                    },
                )?,
            }
        }
        m.end()
    }
}

/// One custom field's value in v2's shape for its type.
struct CfValueV2<'a> {
    field: &'a FieldDef,
    value: &'a CfVal,
    labels: bool,
}

/// An option as v2 writes it: its id, or `{id, label}` with `include_option_labels`.
struct OptionV2<'a> {
    field: &'a FieldDef,
    id: u32,
    labels: bool,
}

impl Serialize for OptionV2<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Labelled<'a> {
            id: u32,
            label: &'a str,
        }
        if self.labels {
            let label = self
                .field
                .options
                .iter()
                .find(|o| o.0 == self.id)
                .map(|o| o.1.as_str())
                .unwrap_or("");
            Labelled { id: self.id, label }.serialize(s)
        } else {
            s.serialize_u32(self.id)
        }
    }
}

#[derive(Serialize)]
struct MoneyV2<'a> {
    #[serde(serialize_with = "num")]
    value: f64,
    currency: &'a str,
}

#[derive(Serialize)]
struct RangeV2 {
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
}

#[derive(Serialize)]
struct TimeV2 {
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    timezone_id: u32,
    timezone_name: &'static str,
}

/// An address custom field: every part present, null when missing.
#[derive(Serialize)]
struct AddrFieldV2<'a> {
    value: String,
    subpremise: Option<&'a str>,
    street_number: &'a str,
    route: &'a str,
    sublocality: Option<&'a str>,
    locality: &'a str,
    admin_area_level_1: &'a str,
    admin_area_level_2: Option<&'a str>,
    country: &'a str,
    postal_code: &'a str,
    formatted_address: String,
}

impl Serialize for CfValueV2<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let option = |id: u32| OptionV2 {
            field: self.field,
            id,
            labels: self.labels,
        };
        let tz = |tz: u8| TIMEZONES[tz as usize % TIMEZONES.len()];
        match self.value {
            CfVal::Str(v) => s.serialize_str(v),
            CfVal::Num(n) => num(n, s),
            CfVal::Money(value, currency) => MoneyV2 {
                value: *value,
                currency,
            }
            .serialize(s),
            CfVal::Opt(id) => option(*id).serialize(s),
            CfVal::Set(ids) => {
                let mut seq = s.serialize_seq(Some(ids.len()))?;
                for id in ids {
                    seq.serialize_element(&option(*id))?;
                }
                seq.end()
            }
            CfVal::Id(id) => s.serialize_u64(*id),
            CfVal::Date(d) => s.serialize_str(&date(*d)),
            CfVal::DateRange(a, b) => RangeV2 {
                value: date(*a),
                until: Some(date(*b)),
            }
            .serialize(s),
            CfVal::Time(secs, zone) => TimeV2 {
                value: hms(*secs),
                until: None,
                timezone_id: tz(*zone).0,
                timezone_name: tz(*zone).1,
            }
            .serialize(s),
            CfVal::TimeRange(a, b, zone) => TimeV2 {
                value: hms(*a),
                until: Some(hms(*b)),
                timezone_id: tz(*zone).0,
                timezone_name: tz(*zone).1,
            }
            .serialize(s),
            CfVal::Addr(a) => AddrFieldV2 {
                value: a.formatted(),
                subpremise: a.subpremise.as_deref(),
                street_number: &a.street_number,
                route: &a.route,
                sublocality: a.sublocality.as_deref(),
                locality: &a.locality,
                admin_area_level_1: &a.admin_area_level_1,
                admin_area_level_2: a.admin_area_level_2.as_deref(),
                country: &a.country,
                postal_code: &a.postal_code,
                formatted_address: a.formatted(),
            }
            .serialize(s),
        }
    }
}

/// v1 time: `YYYY-MM-DD HH:MM:SS`.
pub fn t1(ms: Ms) -> String {
    crate::util::v1ts(ms)
}

pub fn ot1(ms: Option<Ms>) -> Option<String> {
    ms.map(crate::util::v1ts)
}

/// A v1 email or phone. An empty list is written as one empty primary entry, as v1 does.
#[derive(Serialize)]
pub struct ContactV1<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    value: &'a str,
    primary: bool,
}

pub fn contacts_v1(v: &[Contact]) -> Vec<ContactV1<'_>> {
    if v.is_empty() {
        return vec![ContactV1 {
            label: None,
            value: "",
            primary: true,
        }];
    }
    v.iter()
        .map(|c| ContactV1 {
            label: Some(c.label),
            value: &c.value,
            primary: c.primary,
        })
        .collect()
}

/// Suffixes of the extra top-level keys a v1 custom field of this type produces.
pub fn v1_subkeys(t: crate::model::CfType) -> &'static [&'static str] {
    use crate::model::CfType;
    match t {
        CfType::Monetary => &["currency"],
        CfType::DateRange => &["until"],
        CfType::Time => &["timezone_id"],
        CfType::TimeRange => &["until", "timezone_id"],
        CfType::Address => &[
            "subpremise",
            "street_number",
            "route",
            "sublocality",
            "locality",
            "admin_area_level_1",
            "admin_area_level_2",
            "country",
            "postal_code",
            "formatted_address",
        ],
        _ => &[],
    }
}

/// v1 custom fields, flattened into the record: each field's hash as a key, and its parts as
/// `<hash>_<part>` keys (all null when the record has no value).
pub struct CustomFieldsV1<'a> {
    pub db: &'a Db,
    pub entity: FieldEntity,
    pub id: u64,
    pub cf: &'a Cf,
}

impl Serialize for CustomFieldsV1<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Part<'a> {
            Str(&'a str),
            Owned(String),
            Int(u64),
            #[serde(serialize_with = "num")]
            Num(f64),
            Null,
        }
        let mut m = s.serialize_map(None)?;
        for f in self.db.custom_fields(self.entity) {
            let Some(t) = f.cf else { continue };
            let key = &f.key;
            let sub = |part: &str| format!("{key}_{part}");
            let tz = |tz: u8| u64::from(TIMEZONES[tz as usize % TIMEZONES.len()].0);
            match cf_value(self.db, self.entity, self.id, self.cf, f) {
                None => {
                    m.serialize_entry(key, &Part::Null)?;
                    for part in v1_subkeys(t) {
                        m.serialize_entry(&sub(part), &Part::Null)?;
                    }
                }
                Some(CfVal::Str(v)) => m.serialize_entry(key, &Part::Str(&v))?,
                Some(CfVal::Num(n)) => m.serialize_entry(key, &Part::Num(n))?,
                Some(CfVal::Money(n, c)) => {
                    m.serialize_entry(key, &Part::Num(n))?;
                    m.serialize_entry(&sub("currency"), &Part::Str(&c))?;
                }
                Some(CfVal::Opt(id)) => m.serialize_entry(key, &Part::Owned(id.to_string()))?,
                Some(CfVal::Set(ids)) => {
                    let joined = ids.iter().map(u32::to_string).collect::<Vec<_>>();
                    m.serialize_entry(key, &Part::Owned(joined.join(",")))?;
                }
                Some(CfVal::Id(id)) => m.serialize_entry(key, &Part::Int(id))?,
                Some(CfVal::Date(d)) => m.serialize_entry(key, &Part::Owned(date(d)))?,
                Some(CfVal::DateRange(a, b)) => {
                    m.serialize_entry(key, &Part::Owned(date(a)))?;
                    m.serialize_entry(&sub("until"), &Part::Owned(date(b)))?;
                }
                Some(CfVal::Time(secs, zone)) => {
                    m.serialize_entry(key, &Part::Owned(hms(secs)))?;
                    m.serialize_entry(&sub("timezone_id"), &Part::Int(tz(zone)))?;
                }
                Some(CfVal::TimeRange(a, b, zone)) => {
                    m.serialize_entry(key, &Part::Owned(hms(a)))?;
                    m.serialize_entry(&sub("until"), &Part::Owned(hms(b)))?;
                    m.serialize_entry(&sub("timezone_id"), &Part::Int(tz(zone)))?;
                }
                Some(CfVal::Addr(a)) => {
                    let formatted = a.formatted();
                    m.serialize_entry(key, &Part::Str(&formatted))?;
                    let parts = [
                        (
                            "subpremise",
                            a.subpremise.as_deref().map_or(Part::Null, Part::Str),
                        ),
                        ("street_number", Part::Str(&a.street_number)),
                        ("route", Part::Str(&a.route)),
                        (
                            "sublocality",
                            a.sublocality.as_deref().map_or(Part::Null, Part::Str),
                        ),
                        ("locality", Part::Str(&a.locality)),
                        ("admin_area_level_1", Part::Str(&a.admin_area_level_1)),
                        (
                            "admin_area_level_2",
                            a.admin_area_level_2
                                .as_deref()
                                .map_or(Part::Null, Part::Str),
                        ),
                        ("country", Part::Str(&a.country)),
                        ("postal_code", Part::Str(&a.postal_code)),
                        ("formatted_address", Part::Str(&formatted)),
                    ];
                    for (part, v) in parts {
                        m.serialize_entry(&sub(part), &v)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// How a v1 record names a related record: the specs differ per endpoint (the deprecated lists
/// use related objects, `/recents` plain ids; persons and organizations an integer `has_pic`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    Obj,
    ObjIntPic,
    Flat,
}

/// A v1 reference to a user: the related object, or the bare id.
#[derive(Serialize)]
#[serde(untagged)]
pub enum UserRef<'a> {
    Obj {
        id: u64,
        name: &'a str,
        email: &'a str,
        has_pic: PicFlag,
        pic_hash: (),
        active_flag: bool,
        value: u64,
    },
    Id(u64),
}

/// `has_pic`: `false`, or `0` where the spec writes an integer.
#[derive(Serialize)]
#[serde(untagged)]
pub enum PicFlag {
    Bool(bool),
    Int(u8),
}

pub fn user_ref(db: &Db, id: u64, style: Ref) -> UserRef<'_> {
    match db.users.get(id).filter(|_| style != Ref::Flat) {
        Some(u) => UserRef::Obj {
            id: u.id,
            name: &u.name,
            email: &u.email,
            has_pic: if style == Ref::ObjIntPic {
                PicFlag::Int(0)
            } else {
                PicFlag::Bool(false)
            },
            pic_hash: (),
            active_flag: u.active,
            value: u.id,
        },
        None => UserRef::Id(id),
    }
}

/// A v1 reference to a person: the related object, or the bare id (null without one).
#[derive(Serialize)]
#[serde(untagged)]
pub enum PersonRef<'a> {
    Obj {
        active_flag: bool,
        name: String,
        email: Vec<ContactV1<'a>>,
        phone: Vec<ContactV1<'a>>,
        owner_id: u64,
        value: u64,
    },
    Id(Option<u64>),
}

pub fn person_ref(db: &Db, id: Option<u64>, style: Ref) -> PersonRef<'_> {
    match id
        .and_then(|id| db.persons.get(id))
        .filter(|_| style != Ref::Flat)
    {
        Some(p) => PersonRef::Obj {
            active_flag: p.deleted_time.is_none(),
            name: p.name(),
            email: contacts_v1(&p.emails),
            phone: contacts_v1(&p.phones),
            owner_id: p.owner_id,
            value: p.id,
        },
        None => PersonRef::Id(id),
    }
}

/// A v1 reference to an organization: the related object, or the bare id.
#[derive(Serialize)]
#[serde(untagged)]
pub enum OrgRef<'a> {
    Obj {
        name: &'a str,
        people_count: u8,
        owner_id: u64,
        address: Option<String>,
        active_flag: bool,
        cc_email: String,
        value: u64,
    },
    Id(Option<u64>),
}

pub fn org_ref(db: &Db, id: Option<u64>, style: Ref) -> OrgRef<'_> {
    match id
        .and_then(|id| db.orgs.get(id))
        .filter(|_| style != Ref::Flat)
    {
        Some(o) => OrgRef::Obj {
            name: &o.name,
            people_count: 0,
            owner_id: o.owner_id,
            address: o.address.as_ref().map(|a| a.formatted()),
            active_flag: o.deleted_time.is_none(),
            cc_email: format!("{}+org{}@pipedrivemail.com", db.company.domain, o.id),
            value: o.id,
        },
        None => OrgRef::Id(id),
    }
}
