//! Schema definitions (RFC 7643 §2, §7, §8.7) and the registry that resolves attribute paths.
//!
//! Attribute definitions drive validation, projection, filter evaluation (caseExact, dates) and
//! the discovery documents. Profiles add extension schemas at start-up; a schema marked `open`
//! accepts any key as a string attribute (the Metadata extension, whose keys are chosen by
//! the identity provider admin).

use super::error::{ScimError, ScimResult};
use super::path::{AttrPath, starts_with_urn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension URN.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// ListResponse message URN.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// PatchOp message URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// SearchRequest message URN.
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// Schema URN of the `/Schemas` documents.
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// Schema URN of the `/ResourceTypes` documents.
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// Schema URN of `/ServiceProviderConfig`.
pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

/// SCIM attribute data types (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    /// Unicode string.
    #[default]
    String,
    /// `true` / `false`.
    Boolean,
    /// Real number.
    Decimal,
    /// Whole number.
    Integer,
    /// xsd:dateTime (RFC 3339), compared as an instant.
    DateTime,
    /// Base64 binary.
    Binary,
    /// URI reference.
    Reference,
    /// Complex attribute with sub-attributes.
    Complex,
}

/// When an attribute may be written (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// Freely updated.
    #[default]
    ReadWrite,
    /// Set once (on create or when not yet set), never changed.
    Immutable,
    /// Written but never returned (passwords).
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    /// Always, even if excluded.
    Always,
    /// Never.
    Never,
    /// Unless excluded or another list of attributes was requested.
    #[default]
    Default,
    /// Only when asked for in `attributes`.
    Request,
}

/// Uniqueness of an attribute value (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    /// No constraint.
    #[default]
    None,
    /// Unique within the service provider.
    Server,
    /// Globally unique.
    Global,
}

/// One attribute definition, in the shape of RFC 7643 §7 (so profiles can declare extension
/// attributes with the same keys the `/Schemas` document uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeDef {
    /// Attribute name, in its canonical spelling.
    pub name: String,
    /// Data type.
    #[serde(rename = "type", default)]
    pub attr_type: AttrType,
    /// Multi-valued attribute (a JSON array).
    #[serde(default)]
    pub multi_valued: bool,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// Must be present on create/replace.
    #[serde(default)]
    pub required: bool,
    /// String comparisons are case-sensitive.
    #[serde(default)]
    pub case_exact: bool,
    /// Write rules.
    #[serde(default)]
    pub mutability: Mutability,
    /// Return rules.
    #[serde(default)]
    pub returned: Returned,
    /// Uniqueness rules.
    #[serde(default)]
    pub uniqueness: Uniqueness,
    /// Suggested or mandated values (informational except where a profile enforces them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    /// Reference targets for `reference` attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
    /// Sub-attributes of a complex attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<AttributeDef>,
    /// Whether the profile's legacy app stores this attribute. An unsupported attribute is
    /// still recognised (clients such as Entra send it; its values are dropped, never an
    /// error) but is not published in `/Schemas`, so schema-driven clients do not expect it
    /// back.
    #[serde(default = "supported_default", skip_serializing)]
    pub supported: bool,
}

fn supported_default() -> bool {
    true
}

impl AttributeDef {
    /// A single-valued, optional, read-write, case-insensitive string attribute.
    pub fn string(name: &str) -> Self {
        AttributeDef {
            name: name.to_string(),
            attr_type: AttrType::String,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
            supported: true,
        }
    }

    /// An attribute of another type, otherwise as [`AttributeDef::string`].
    pub fn typed(name: &str, attr_type: AttrType) -> Self {
        AttributeDef {
            attr_type,
            ..Self::string(name)
        }
    }

    /// A complex attribute with the given sub-attributes.
    pub fn complex(name: &str, subs: Vec<AttributeDef>) -> Self {
        AttributeDef {
            sub_attributes: subs,
            ..Self::typed(name, AttrType::Complex)
        }
    }

    /// A reference attribute to the given target types.
    pub fn reference(name: &str, targets: &[&str]) -> Self {
        AttributeDef {
            reference_types: targets.iter().map(|s| s.to_string()).collect(),
            ..Self::typed(name, AttrType::Reference)
        }
    }

    /// Marks the attribute multi-valued.
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    /// Marks the attribute required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks string comparison case-sensitive.
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    /// Sets mutability.
    pub fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }

    /// Sets return behaviour.
    pub fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }

    /// Sets uniqueness.
    pub fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }

    /// Sets canonical values.
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the description.
    pub fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    /// The sub-attribute named `name` (ignoring case).
    pub fn sub(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The RFC 7643 §7 representation (supported sub-attributes included, empty lists
    /// omitted).
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if self.attr_type == AttrType::Complex
            && let Some(map) = v.as_object_mut()
        {
            let subs: Vec<Value> = self
                .sub_attributes
                .iter()
                .filter(|s| s.supported)
                .map(AttributeDef::to_json)
                .collect();
            map.insert("subAttributes".into(), Value::Array(subs));
        }
        v
    }
}

/// A schema: a URN plus its attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schema {
    /// Schema URN.
    pub id: String,
    /// Short name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Attributes in canonical order.
    #[serde(default)]
    pub attributes: Vec<AttributeDef>,
    /// Accept any key as a single-valued string attribute (keys chosen by the IdP admin, as in
    /// `urn:ietf:params:scim:schemas:extension:2.0:Metadata:{key}`).
    #[serde(default, skip_serializing)]
    pub open: bool,
}

impl Schema {
    /// The attribute named `name` (ignoring case).
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The `/Schemas/{id}` document.
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self
                .attributes
                .iter()
                .filter(|a| a.supported)
                .map(AttributeDef::to_json)
                .collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base_url}/Schemas/{}", self.id),
            }
        })
    }
}

/// A schema extension attached to a resource type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaExtension {
    /// Extension schema URN.
    pub schema: String,
    /// Whether resources must carry it.
    pub required: bool,
}

/// A resource type (RFC 7643 §6): User or Group here.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// Name, also the `meta.resourceType` value (`User`).
    pub name: String,
    /// Endpoint relative to the base URL (`/Users`).
    pub endpoint: String,
    /// Description.
    pub description: String,
    /// Core schema URN.
    pub schema: String,
    /// Extensions.
    pub extensions: Vec<SchemaExtension>,
}

impl ResourceType {
    /// The `/ResourceTypes/{name}` document.
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema,
            "schemaExtensions": self.extensions,
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/ResourceTypes/{}", self.name),
            }
        })
    }

    /// All schema URNs a resource of this type may carry, core first.
    pub fn schema_urns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.schema.as_str())
            .chain(self.extensions.iter().map(|e| e.schema.as_str()))
    }
}

/// Where an attribute path landed.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The schema that defines the attribute.
    pub schema: &'a Schema,
    /// True when the schema is the resource type's core schema (attributes live at the top
    /// level of the JSON); false for extensions (nested under the URN key).
    pub is_core: bool,
    /// The attribute's definition; `None` for a key of an open schema or a common attribute.
    pub attr: Option<&'a AttributeDef>,
    /// The sub-attribute's definition when the path names one.
    pub sub: Option<&'a AttributeDef>,
}

impl Resolved<'_> {
    /// The definition that governs the path's value: the sub-attribute if one was named.
    pub fn leaf(&self) -> Option<&AttributeDef> {
        self.sub.or(self.attr)
    }

    /// Whether string comparison on the path is case-sensitive.
    pub fn case_exact(&self) -> bool {
        self.leaf().is_some_and(|a| a.case_exact)
    }

    /// The data type of the path's value.
    pub fn attr_type(&self) -> AttrType {
        self.leaf().map(|a| a.attr_type).unwrap_or(AttrType::String)
    }
}

/// The common attributes of every resource (RFC 7643 §3.1); not part of any schema document.
pub fn common_attributes() -> &'static [AttributeDef] {
    static COMMON: std::sync::OnceLock<Vec<AttributeDef>> = std::sync::OnceLock::new();
    COMMON.get_or_init(|| {
        use Mutability::*;
        vec![
            AttributeDef::string("id")
                .case_exact()
                .mutability(ReadOnly)
                .returned(Returned::Always)
                .uniqueness(Uniqueness::Server),
            AttributeDef::string("externalId").case_exact(),
            AttributeDef::complex(
                "meta",
                vec![
                    AttributeDef::string("resourceType")
                        .case_exact()
                        .mutability(ReadOnly),
                    AttributeDef::typed("created", AttrType::DateTime).mutability(ReadOnly),
                    AttributeDef::typed("lastModified", AttrType::DateTime).mutability(ReadOnly),
                    AttributeDef::reference("location", &["uri"]).mutability(ReadOnly),
                    AttributeDef::string("version")
                        .case_exact()
                        .mutability(ReadOnly),
                ],
            )
            .mutability(ReadOnly),
        ]
    })
}

/// All schemas and resource types a gateway serves.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRegistry {
    schemas: Vec<Schema>,
    resource_types: Vec<ResourceType>,
}

impl Default for SchemaRegistry {
    fn default() -> Self {
        Self::core()
    }
}

impl SchemaRegistry {
    /// User (with the enterprise extension) and Group, as RFC 7643 §8.7 defines them.
    pub fn core() -> Self {
        SchemaRegistry {
            schemas: vec![user_schema(), enterprise_user_schema(), group_schema()],
            resource_types: vec![
                ResourceType {
                    name: "User".into(),
                    endpoint: "/Users".into(),
                    description: "User Account".into(),
                    schema: USER_SCHEMA.into(),
                    extensions: vec![SchemaExtension {
                        schema: ENTERPRISE_USER_SCHEMA.into(),
                        required: false,
                    }],
                },
                ResourceType {
                    name: "Group".into(),
                    endpoint: "/Groups".into(),
                    description: "Group".into(),
                    schema: GROUP_SCHEMA.into(),
                    extensions: vec![],
                },
            ],
        }
    }

    /// Registers an extension schema and attaches it to `resource_type`.
    /// Runs at start-up while loading a profile; fails if the resource type is unknown or
    /// the URN is already taken.
    pub fn add_extension(
        &mut self,
        resource_type: &str,
        schema: Schema,
        required: bool,
    ) -> ScimResult<()> {
        if !starts_with_urn(&schema.id) {
            return Err(ScimError::internal(format!(
                "extension schema id '{}' is not a URN",
                schema.id
            )));
        }
        if self.schema(&schema.id).is_some() {
            return Err(ScimError::internal(format!(
                "schema '{}' is registered twice",
                schema.id
            )));
        }
        let rt = self
            .resource_types
            .iter_mut()
            .find(|r| r.name.eq_ignore_ascii_case(resource_type))
            .ok_or_else(|| {
                ScimError::internal(format!("unknown resource type '{resource_type}'"))
            })?;
        rt.extensions.push(SchemaExtension {
            schema: schema.id.clone(),
            required,
        });
        self.schemas.push(schema);
        Ok(())
    }

    /// Adds `attr` to the core schema of `resource_type`, for a legacy app's own attributes
    /// that clients send without a URN (Smarter Drafter's `initials`). Runs at start-up while
    /// loading a profile; fails if the resource type is unknown, the name is not a plain
    /// attribute name, or it is already defined (core, common or extension attribute), since
    /// an unqualified name must resolve to one definition.
    pub fn add_attribute(&mut self, resource_type: &str, attr: AttributeDef) -> ScimResult<()> {
        let rt = self.resource_type(resource_type).cloned().ok_or_else(|| {
            ScimError::internal(format!("unknown resource type '{resource_type}'"))
        })?;
        let plain = AttrPath::parse(&attr.name)
            .is_ok_and(|p| p.urn.is_none() && p.sub.is_none() && p.name == attr.name);
        if !plain {
            return Err(ScimError::internal(format!(
                "'{}' is not a plain attribute name",
                attr.name
            )));
        }
        if self
            .resolve(&rt, &AttrPath::new(attr.name.clone()))
            .is_some()
        {
            return Err(ScimError::internal(format!(
                "'{}' is already an attribute of {}",
                attr.name, rt.name
            )));
        }
        let core = self
            .schema_mut(&rt.schema)
            .ok_or_else(|| ScimError::internal("resource type without core schema"))?;
        core.attributes.push(attr);
        Ok(())
    }

    /// Limits what resource type `rt` publishes and stores to `paths` (`userName`,
    /// `name.givenName`, `emails.value`, `urn:…:enterprise:2.0:User:manager.value`): every
    /// other attribute of its closed schemas becomes unsupported (accepted, dropped, not
    /// published). A path without a sub-attribute keeps all of its sub-attributes. Runs at
    /// start-up; returns every path that names nothing.
    pub fn restrict(&mut self, rt: &str, paths: &[String]) -> Result<(), Vec<String>> {
        let Some(rt_def) = self.resource_type(rt).cloned() else {
            return Err(vec![format!("unknown resource type '{rt}'")]);
        };
        let urns: Vec<String> = rt_def.schema_urns().map(str::to_string).collect();
        for urn in &urns {
            if let Some(schema) = self.schema_mut(urn) {
                if schema.open {
                    continue;
                }
                for a in &mut schema.attributes {
                    a.supported = false;
                    for s in &mut a.sub_attributes {
                        s.supported = false;
                    }
                }
            }
        }
        let mut errors = Vec::new();
        for p in paths {
            let path = match self.parse_path(p) {
                Ok(path) => path,
                Err(e) => {
                    errors.push(format!("{rt}: '{p}': {}", e.detail));
                    continue;
                }
            };
            let Some(r) = self.resolve(&rt_def, &path) else {
                errors.push(format!("{rt}: '{p}' is not an attribute of {rt}"));
                continue;
            };
            let (urn, Some(name)) = (r.schema.id.clone(), r.attr.map(|a| a.name.clone())) else {
                continue;
            };
            let sub = r.sub.map(|s| s.name.clone());
            if let Some(a) = self
                .schema_mut(&urn)
                .and_then(|s| s.attributes.iter_mut().find(|a| a.name == name))
            {
                a.supported = true;
                for s in &mut a.sub_attributes {
                    if sub.as_deref().is_none_or(|n| n == s.name) {
                        s.supported = true;
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Applies `f` to the definition `path` names for resource type `rt` (the sub-attribute
    /// when it names one); `false` when it names nothing (or a read-only common attribute).
    /// Used by profiles to mark attributes required or set canonical values; tuning
    /// `externalId` lists it in the core schema.
    pub fn tune(&mut self, rt: &str, path: &str, f: impl FnOnce(&mut AttributeDef)) -> bool {
        let Some(rt_def) = self.resource_type(rt).cloned() else {
            return false;
        };
        let Ok(p) = self.parse_path(path) else {
            return false;
        };
        let Some(r) = self.resolve(&rt_def, &p) else {
            return false;
        };
        let (urn, Some(name)) = (r.schema.id.clone(), r.attr.map(|a| a.name.clone())) else {
            return false;
        };
        let sub = r.sub.map(|s| s.name.clone());
        // A writable common attribute (externalId) lives in no schema; a profile that tunes
        // it (marks it required) gets a copy in the core schema, which RFC 7643 §3.1 allows
        // ("MAY list common attributes"), so the rule is both published and enforced.
        let common = r.is_core
            && sub.is_none()
            && common_attributes()
                .iter()
                .any(|c| c.name == name && c.mutability != Mutability::ReadOnly);
        let Some(schema) = self.schema_mut(&urn) else {
            return false;
        };
        if common && !schema.attributes.iter().any(|a| a.name == name) {
            let copy = common_attributes().iter().find(|c| c.name == name).cloned();
            schema.attributes.extend(copy);
        }
        let Some(a) = schema.attributes.iter_mut().find(|a| a.name == name) else {
            return false;
        };
        match sub {
            None => f(a),
            Some(sub) => match a.sub_attributes.iter_mut().find(|s| s.name == sub) {
                Some(s) => f(s),
                None => return false,
            },
        }
        true
    }

    /// Mutable access to a registered schema, so a profile can tighten core attributes
    /// (e.g. mark `title` required).
    pub fn schema_mut(&mut self, urn: &str) -> Option<&mut Schema> {
        self.schemas
            .iter_mut()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// All schemas, core first.
    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }

    /// All resource types.
    pub fn resource_types(&self) -> &[ResourceType] {
        &self.resource_types
    }

    /// The schema with this URN (ignoring case).
    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The resource type with this name (ignoring case).
    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.resource_types
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// If `s` starts with a registered schema URN followed by `:` or the end, that URN in
    /// its canonical spelling and the remainder after the colon (empty when `s` is the URN).
    /// The longest URN wins, so `…:2.0:User` never shadows a longer extension URN.
    pub fn match_urn<'a>(&'a self, s: &'a str) -> Option<(&'a str, &'a str)> {
        let mut best: Option<(&str, &str)> = None;
        for schema in &self.schemas {
            let n = schema.id.len();
            if s.len() >= n
                && s.is_char_boundary(n)
                && s[..n].eq_ignore_ascii_case(&schema.id)
                && (s.len() == n || s.as_bytes()[n] == b':')
                && best.is_none_or(|(b, _)| b.len() < n)
            {
                let rest = if s.len() == n { "" } else { &s[n + 1..] };
                best = Some((schema.id.as_str(), rest));
            }
        }
        best
    }

    /// Parses an attribute path, splitting a URN prefix at a registered schema URN when one
    /// matches (so `…:extension:2.0:Metadata:costCenter` has name `costCenter`), otherwise at
    /// the last colon. Fails with `invalidPath` when `s` is only a URN.
    pub fn parse_path(&self, s: &str) -> ScimResult<AttrPath> {
        let s = s.trim();
        if let Some((urn, rest)) = self.match_urn(s) {
            if rest.is_empty() {
                return Err(ScimError::invalid_path(format!(
                    "path '{s}' names a schema, not an attribute"
                )));
            }
            return AttrPath::parse_rest(Some(urn.to_string()), rest, s);
        }
        AttrPath::parse(s)
    }

    /// Resolves `path` for a resource of type `rt`. An unqualified name is looked up in the
    /// common attributes, then the core schema, then each extension. Returns `None` when no
    /// schema defines it (the caller decides between `invalidPath`, `invalidFilter` and
    /// `invalidValue`).
    pub fn resolve<'a>(&'a self, rt: &'a ResourceType, path: &AttrPath) -> Option<Resolved<'a>> {
        // The schema the path names, or (unqualified) each of the type's in order.
        let only = match &path.urn {
            Some(urn) => Some(rt.schema_urns().find(|u| u.eq_ignore_ascii_case(urn))?),
            None => None,
        };
        let candidates = rt.schema_urns().filter(|u| only.is_none_or(|o| o == *u));
        if (path.urn.is_none()
            || path
                .urn
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&rt.schema)))
            && let Some(attr) = common_attributes()
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(&path.name))
        {
            let schema = self.schema(&rt.schema)?;
            return resolve_sub(schema, true, attr, path);
        }
        for urn in candidates {
            let Some(schema) = self.schema(urn) else {
                continue;
            };
            let is_core = urn.eq_ignore_ascii_case(&rt.schema);
            if let Some(attr) = schema.attribute(&path.name) {
                return resolve_sub(schema, is_core, attr, path);
            }
            if schema.open && path.urn.is_some() && path.sub.is_none() {
                return Some(Resolved {
                    schema,
                    is_core,
                    attr: None,
                    sub: None,
                });
            }
        }
        None
    }

    /// Rewrites `path` to the canonical spelling of its schema URN, attribute and
    /// sub-attribute; an extension attribute always gets its URN. `None` if it does not resolve.
    pub fn canonical_path(&self, rt: &ResourceType, path: &AttrPath) -> Option<AttrPath> {
        let r = self.resolve(rt, path)?;
        Some(AttrPath {
            urn: if r.is_core {
                None
            } else {
                Some(r.schema.id.clone())
            },
            name: r
                .attr
                .map(|a| a.name.clone())
                .unwrap_or_else(|| path.name.clone()),
            sub: match (r.sub, &path.sub) {
                (Some(s), _) => Some(s.name.clone()),
                (None, s) => s.clone(),
            },
        })
    }

    /// Whether discovery (`/Schemas`, `/ResourceTypes`) shows schema `urn`: a resource type's
    /// core schema, an open extension, or an extension with an attribute the profile stores.
    /// An extension whose attributes are all unsupported stays attached (Entra's enterprise
    /// attributes are still accepted and dropped) but is not advertised, so schema-driven
    /// clients do not expect values of it back.
    pub fn is_published(&self, urn: &str) -> bool {
        if self
            .resource_types
            .iter()
            .any(|rt| rt.schema.eq_ignore_ascii_case(urn))
        {
            return true;
        }
        self.schema(urn)
            .is_some_and(|s| s.open || s.attributes.iter().any(|a| a.supported))
    }

    /// The `/ResourceTypes/{name}` document of `rt`, listing its published extensions only.
    pub fn resource_type_document(&self, rt: &ResourceType, base_url: &str) -> Value {
        let mut shown = rt.clone();
        shown.extensions.retain(|e| self.is_published(&e.schema));
        shown.to_json(base_url)
    }

    /// The `/Schemas` ListResponse (published schemas only).
    pub fn schemas_document(&self, base_url: &str) -> Value {
        let items: Vec<Value> = self
            .schemas
            .iter()
            .filter(|s| self.is_published(&s.id))
            .map(|s| s.to_json(base_url))
            .collect();
        list_document(items)
    }

    /// The `/ResourceTypes` ListResponse.
    pub fn resource_types_document(&self, base_url: &str) -> Value {
        let items: Vec<Value> = self
            .resource_types
            .iter()
            .map(|r| self.resource_type_document(r, base_url))
            .collect();
        list_document(items)
    }
}

fn resolve_sub<'a>(
    schema: &'a Schema,
    is_core: bool,
    attr: &'a AttributeDef,
    path: &AttrPath,
) -> Option<Resolved<'a>> {
    let sub = match &path.sub {
        Some(name) => Some(attr.sub(name)?),
        None => None,
    };
    Some(Resolved {
        schema,
        is_core,
        attr: Some(attr),
        sub,
    })
}

fn list_document(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": items.len(),
        "itemsPerPage": items.len(),
        "startIndex": 1,
        "Resources": items,
    })
}

/// What `/ServiceProviderConfig` advertises; built from the gateway's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProviderConfig {
    /// Documentation link.
    pub documentation_uri: Option<String>,
    /// Largest page the server returns.
    pub max_results: usize,
    /// Largest request body accepted, in bytes.
    pub max_payload_size: usize,
    /// Whether ETags / If-Match are honoured.
    pub etag: bool,
    /// Whether sorting is supported.
    pub sort: bool,
    /// Authentication schemes: (type, name, description).
    pub auth_schemes: Vec<(String, String, String)>,
}

impl Default for ServiceProviderConfig {
    fn default() -> Self {
        ServiceProviderConfig {
            documentation_uri: None,
            max_results: 200,
            max_payload_size: 1_048_576,
            etag: true,
            sort: true,
            auth_schemes: vec![(
                "oauthbearertoken".into(),
                "OAuth Bearer Token".into(),
                "Authentication with a bearer token (the Secret Token in Entra)".into(),
            )],
        }
    }
}

impl ServiceProviderConfig {
    /// The `/ServiceProviderConfig` document (RFC 7643 §5).
    pub fn to_json(&self, base_url: &str) -> Value {
        let schemes: Vec<Value> = self
            .auth_schemes
            .iter()
            .enumerate()
            .map(
                |(i, (t, n, d))| json!({"type": t, "name": n, "description": d, "primary": i == 0}),
            )
            .collect();
        let mut doc = json!({
            "schemas": [SPC_SCHEMA],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": self.max_results},
            "changePassword": {"supported": false},
            "sort": {"supported": self.sort},
            "etag": {"supported": self.etag},
            "authenticationSchemes": schemes,
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{base_url}/ServiceProviderConfig"),
            }
        });
        if let (Some(uri), Some(map)) = (&self.documentation_uri, doc.as_object_mut()) {
            map.insert("documentationUri".into(), Value::String(uri.clone()));
        }
        doc
    }
}

fn multi_valued_simple(name: &str, type_values: &[&str]) -> AttributeDef {
    AttributeDef::complex(
        name,
        vec![
            AttributeDef::string("value"),
            AttributeDef::string("display"),
            AttributeDef::string("type").canonical(type_values),
            AttributeDef::typed("primary", AttrType::Boolean),
        ],
    )
    .multi()
}

/// RFC 7643 §4.1 User.
pub fn user_schema() -> Schema {
    use AttrType::*;
    use AttributeDef as A;
    Schema {
        id: USER_SCHEMA.into(),
        name: "User".into(),
        description: "User Account".into(),
        open: false,
        attributes: vec![
            A::string("userName")
                .required()
                .uniqueness(Uniqueness::Server)
                .describe("Unique identifier for the User, typically used to sign in"),
            A::complex(
                "name",
                vec![
                    A::string("formatted"),
                    A::string("familyName"),
                    A::string("givenName"),
                    A::string("middleName"),
                    A::string("honorificPrefix"),
                    A::string("honorificSuffix"),
                ],
            ),
            A::string("displayName"),
            A::string("nickName"),
            A::reference("profileUrl", &["external"]),
            A::string("title"),
            A::string("userType"),
            A::string("preferredLanguage"),
            A::string("locale"),
            A::string("timezone"),
            A::typed("active", Boolean),
            A::string("password")
                .mutability(Mutability::WriteOnly)
                .returned(Returned::Never),
            multi_valued_simple("emails", &["work", "home", "other"]),
            multi_valued_simple(
                "phoneNumbers",
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            multi_valued_simple(
                "ims",
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            ),
            multi_valued_simple("photos", &["photo", "thumbnail"]),
            A::complex(
                "addresses",
                vec![
                    A::string("formatted"),
                    A::string("streetAddress"),
                    A::string("locality"),
                    A::string("region"),
                    A::string("postalCode"),
                    A::string("country"),
                    A::string("type").canonical(&["work", "home", "other"]),
                    A::typed("primary", Boolean),
                ],
            )
            .multi(),
            A::complex(
                "groups",
                vec![
                    A::string("value").mutability(Mutability::ReadOnly),
                    A::reference("$ref", &["User", "Group"]).mutability(Mutability::ReadOnly),
                    A::string("display").mutability(Mutability::ReadOnly),
                    A::string("type")
                        .canonical(&["direct", "indirect"])
                        .mutability(Mutability::ReadOnly),
                ],
            )
            .multi()
            .mutability(Mutability::ReadOnly),
            multi_valued_simple("entitlements", &[]),
            multi_valued_simple("roles", &[]),
            multi_valued_simple("x509Certificates", &[]),
        ],
    }
}

/// RFC 7643 §4.3 Enterprise User extension.
pub fn enterprise_user_schema() -> Schema {
    use AttributeDef as A;
    Schema {
        id: ENTERPRISE_USER_SCHEMA.into(),
        name: "EnterpriseUser".into(),
        description: "Enterprise User".into(),
        open: false,
        attributes: vec![
            A::string("employeeNumber"),
            A::string("costCenter"),
            A::string("organization"),
            A::string("division"),
            A::string("department"),
            A::complex(
                "manager",
                vec![
                    A::string("value"),
                    A::reference("$ref", &["User"]),
                    A::string("displayName").mutability(Mutability::ReadOnly),
                ],
            ),
        ],
    }
}

/// RFC 7643 §4.2 Group.
pub fn group_schema() -> Schema {
    use AttributeDef as A;
    Schema {
        id: GROUP_SCHEMA.into(),
        name: "Group".into(),
        description: "Group".into(),
        open: false,
        attributes: vec![
            A::string("displayName").required(),
            A::complex(
                "members",
                vec![
                    A::string("value").mutability(Mutability::Immutable),
                    A::reference("$ref", &["User", "Group"]).mutability(Mutability::Immutable),
                    A::string("display"),
                    A::string("type")
                        .canonical(&["User", "Group"])
                        .mutability(Mutability::Immutable),
                ],
            )
            .multi(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_core_extension_and_common() {
        let reg = SchemaRegistry::core();
        let user = reg.resource_type("user").unwrap();
        let r = reg.resolve(user, &AttrPath::new("USERNAME")).unwrap();
        assert!(r.is_core);
        assert_eq!(r.attr.unwrap().name, "userName");
        let r = reg
            .resolve(user, &AttrPath::with_sub("name", "GIVENNAME"))
            .unwrap();
        assert_eq!(r.sub.unwrap().name, "givenName");
        let r = reg.resolve(user, &AttrPath::new("employeeNumber")).unwrap();
        assert!(!r.is_core);
        let p = reg
            .parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
            .unwrap();
        assert_eq!(p.name, "manager");
        let r = reg.resolve(user, &p).unwrap();
        assert_eq!(r.schema.id, ENTERPRISE_USER_SCHEMA);
        let r = reg.resolve(user, &AttrPath::new("externalId")).unwrap();
        assert!(r.case_exact());
        assert!(reg.resolve(user, &AttrPath::new("nope")).is_none());
        assert!(
            reg.resolve(user, &AttrPath::with_sub("name", "nope"))
                .is_none()
        );
    }

    #[test]
    fn open_extension_accepts_any_key_and_longest_urn_wins() {
        let mut reg = SchemaRegistry::core();
        reg.add_extension(
            "User",
            Schema {
                id: "urn:ietf:params:scim:schemas:extension:2.0:Metadata".into(),
                name: "Metadata".into(),
                description: String::new(),
                attributes: vec![],
                open: true,
            },
            false,
        )
        .unwrap();
        let p = reg
            .parse_path("urn:ietf:params:scim:schemas:extension:2.0:metadata:costCenter")
            .unwrap();
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:2.0:Metadata")
        );
        assert_eq!(p.name, "costCenter");
        let user = reg.resource_type("User").unwrap();
        let r = reg.resolve(user, &p).unwrap();
        assert!(r.attr.is_none());
        // an unqualified name never falls into an open schema
        assert!(reg.resolve(user, &AttrPath::new("costCenterX")).is_none());
        assert!(reg.parse_path(ENTERPRISE_USER_SCHEMA).is_err());
        let (urn, rest) = reg
            .match_urn("urn:ietf:params:scim:schemas:core:2.0:User:userName")
            .unwrap();
        assert_eq!(urn, USER_SCHEMA);
        assert_eq!(rest, "userName");
    }

    #[test]
    fn extension_registration_errors() {
        let mut reg = SchemaRegistry::core();
        let s = Schema {
            id: ENTERPRISE_USER_SCHEMA.into(),
            name: String::new(),
            description: String::new(),
            attributes: vec![],
            open: false,
        };
        assert!(reg.add_extension("User", s.clone(), false).is_err());
        let mut s2 = s;
        s2.id = "notaurn".into();
        assert!(reg.add_extension("User", s2, false).is_err());
    }

    #[test]
    fn an_extension_without_stored_attributes_is_accepted_but_not_advertised() {
        let mut reg = SchemaRegistry::core();
        reg.restrict("User", &["userName".to_string()]).unwrap();
        assert!(!reg.is_published(ENTERPRISE_USER_SCHEMA));
        assert!(reg.is_published(USER_SCHEMA) && reg.is_published(GROUP_SCHEMA));
        let docs = reg.schemas_document("http://x");
        assert_eq!(docs["totalResults"], 2, "{docs}");
        let rts = reg.resource_types_document("http://x");
        assert_eq!(rts["Resources"][0]["schemaExtensions"], json!([]));
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let user = crate::scim::resource::normalize_resource(
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"department": "D"}}),
            &ctx,
            Default::default(),
        )
        .unwrap();
        assert!(
            user.get(ENTERPRISE_USER_SCHEMA)
                .is_none_or(|e| e.get("department").is_none()),
            "{user}"
        );
        let mut reg = SchemaRegistry::core();
        reg.restrict("User", &[format!("{ENTERPRISE_USER_SCHEMA}:department")])
            .unwrap();
        assert!(reg.is_published(ENTERPRISE_USER_SCHEMA));
    }

    #[test]
    fn a_required_external_id_is_listed_in_the_core_schema_and_enforced() {
        let mut reg = SchemaRegistry::core();
        assert!(reg.tune("User", "externalId", |a| a.required = true));
        assert!(
            !reg.tune("User", "id", |a| a.required = true),
            "id is read-only"
        );
        let user = reg.schema(USER_SCHEMA).unwrap();
        assert!(user.attribute("externalId").is_some_and(|a| a.required));
        assert!(user.attribute("id").is_none());
        assert!(reg.tune("User", "externalId", |a| a.description = "again".into()));
        let n = reg.schema(USER_SCHEMA).unwrap().attributes.len();
        assert_eq!(
            reg.schema(USER_SCHEMA)
                .unwrap()
                .attributes
                .iter()
                .filter(|a| a.name == "externalId")
                .count(),
            1,
            "{n} attributes"
        );
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let e = crate::scim::resource::normalize_resource(
            json!({"userName": "a"}),
            &ctx,
            Default::default(),
        )
        .unwrap_err();
        assert!(e.detail.contains("'externalId'"), "{}", e.detail);
        assert!(
            crate::scim::resource::normalize_resource(
                json!({"userName": "a", "externalId": "x"}),
                &ctx,
                Default::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn custom_core_attributes_resolve_unqualified_and_clash_is_refused() {
        let mut reg = SchemaRegistry::core();
        reg.add_attribute("User", AttributeDef::string("initials").required())
            .unwrap();
        let user = reg.resource_type("User").unwrap().clone();
        let r = reg.resolve(&user, &AttrPath::new("INITIALS")).unwrap();
        assert!(r.is_core);
        assert_eq!(r.attr.unwrap().name, "initials");
        let qualified = reg.parse_path(&format!("{USER_SCHEMA}:initials")).unwrap();
        assert!(reg.resolve(&user, &qualified).is_some());
        for clash in ["initials", "userName", "department", "externalId"] {
            assert!(
                reg.add_attribute("User", AttributeDef::string(clash))
                    .is_err(),
                "{clash}"
            );
        }
        for bad in ["name.x", "urn:a:b:c", "has space", ""] {
            assert!(
                reg.add_attribute("User", AttributeDef::string(bad))
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            reg.add_attribute("Nope", AttributeDef::string("x"))
                .is_err()
        );
    }

    #[test]
    fn discovery_documents() {
        let reg = SchemaRegistry::core();
        let d = reg.schemas_document("http://x/scim/v2");
        assert_eq!(d["totalResults"], 3);
        let user = &d["Resources"][0];
        assert_eq!(user["id"], USER_SCHEMA);
        let un = &user["attributes"][0];
        assert_eq!(un["name"], "userName");
        assert_eq!(un["type"], "string");
        assert_eq!(un["uniqueness"], "server");
        assert_eq!(un["required"], true);
        assert_eq!(un["multiValued"], false);
        let rt = reg.resource_types_document("http://x");
        assert_eq!(
            rt["Resources"][0]["schemaExtensions"][0]["schema"],
            ENTERPRISE_USER_SCHEMA
        );
        let spc = ServiceProviderConfig::default().to_json("http://x");
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(spc["authenticationSchemes"][0]["primary"], true);
    }

    #[test]
    fn attribute_defs_deserialize_from_profile_toml_shape() {
        let a: AttributeDef = serde_json::from_value(json!({
            "name": "folders", "type": "string", "multiValued": true
        }))
        .unwrap();
        assert!(a.multi_valued);
        assert_eq!(a.mutability, Mutability::ReadWrite);
        assert!(serde_json::from_value::<AttributeDef>(json!({"name":"x","bogus":1})).is_err());
    }
}

/// A registry plus the resource type a request is about: what filter evaluation, PATCH and
/// validation need to resolve attribute paths.
#[derive(Debug, Clone, Copy)]
pub struct SchemaContext<'a> {
    /// All schemas.
    pub registry: &'a SchemaRegistry,
    /// The resource type of the resource being read or written.
    pub rt: &'a ResourceType,
}

impl<'a> SchemaContext<'a> {
    /// Context for resource type `name`; `None` if it is not registered.
    pub fn new(registry: &'a SchemaRegistry, name: &str) -> Option<Self> {
        Some(SchemaContext {
            registry,
            rt: registry.resource_type(name)?,
        })
    }

    /// See [`SchemaRegistry::resolve`].
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'a>> {
        self.registry.resolve(self.rt, path)
    }

    /// See [`SchemaRegistry::parse_path`].
    pub fn parse_path(&self, s: &str) -> ScimResult<AttrPath> {
        self.registry.parse_path(s)
    }

    /// True when `urn` is the core schema or one of the resource type's extensions.
    pub fn has_schema(&self, urn: &str) -> bool {
        self.rt.schema_urns().any(|u| u.eq_ignore_ascii_case(urn))
    }
}
