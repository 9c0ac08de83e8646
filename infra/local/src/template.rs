//! `infra/template.yaml`, read as data: the local stack provisions the resources it declares
//! and gives each function the environment it declares, so local and deployed cannot drift.

use std::collections::BTreeMap;

use serde_json::Value;

pub const TEMPLATE_YAML: &str = include_str!("../../template.yaml");

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("infra/template.yaml is not valid YAML: {0}")]
    Yaml(String),
    #[error("infra/template.yaml: {0}")]
    Shape(String),
    #[error("cannot resolve {0} locally")]
    Unresolvable(String),
}

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Value>,
    pub globals: Value,
    pub resources: BTreeMap<String, Resource>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub properties: Value,
}

/// An SQS event source mapping declared on a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSource {
    pub function: String,
    pub queue: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
}

/// How a function is reached over HTTP, as the template declares it: what decides the shape of
/// the event the local runner hands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpEntry {
    /// `FunctionUrlConfig`: the function's own URL. Every path reaches the function; the event
    /// is payload format 2.0 with the `$default` route and a `<url-id>.lambda-url.<region>.on.aws`
    /// domain.
    FunctionUrl { auth_type: String },
    /// `HttpApi` events: API Gateway's HTTP API, payload format 2.0 with the route matched as
    /// `routeKey` (`GET /path`, `ANY /v1/{proxy+}`). `api` is the logical id the events' `ApiId`
    /// refers to (none: SAM's implicit API).
    HttpApi { api: Option<String>, routes: Vec<HttpApiRoute> },
}

/// One `HttpApi` event of a function: its method (`ANY` for any) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpApiRoute {
    pub method: String,
    pub path: String,
}

impl HttpApiRoute {
    /// API Gateway's `routeKey`: `"{method} {path}"`.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Template {
    pub fn load() -> Result<Self, TemplateError> {
        Self::parse(TEMPLATE_YAML)
    }

    pub fn parse(yaml: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_norway::from_str(yaml).map_err(|e| TemplateError::Yaml(e.to_string()))?;
        let resources = doc["Resources"]
            .as_object()
            .ok_or_else(|| TemplateError::Shape("no Resources".into()))?
            .iter()
            .map(|(name, r)| {
                let kind = r["Type"].as_str().unwrap_or_default().to_owned();
                let properties = r.get("Properties").cloned().unwrap_or(Value::Object(Default::default()));
                (name.clone(), Resource { kind, properties })
            })
            .collect();
        let parameters = doc["Parameters"].as_object().map(|p| p.clone().into_iter().collect()).unwrap_or_default();
        Ok(Self { parameters, globals: doc["Globals"].clone(), resources })
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.kind == kind)
    }

    /// A function's environment: the Globals' variables overlaid with its own, unresolved.
    pub fn function_environment(&self, function: &str) -> Result<BTreeMap<String, Value>, TemplateError> {
        let resource =
            self.resources.get(function).ok_or_else(|| TemplateError::Shape(format!("no function {function}")))?;
        let mut vars = BTreeMap::new();
        for source in [&self.globals["Function"], &resource.properties] {
            if let Some(map) = source["Environment"]["Variables"].as_object() {
                vars.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(vars)
    }

    /// A function's `Timeout` (its own, else the Globals'; Lambda's default is 3 s).
    pub fn function_timeout(&self, function: &str) -> std::time::Duration {
        let own = self.resources.get(function).and_then(|r| r.properties["Timeout"].as_u64());
        let seconds = own.or_else(|| self.globals["Function"]["Timeout"].as_u64()).unwrap_or(3);
        std::time::Duration::from_secs(seconds)
    }

    /// A function's `MemorySize` in MB (its own, else the Globals'; Lambda's default is 128).
    pub fn function_memory_mb(&self, function: &str) -> u64 {
        let own = self.resources.get(function).and_then(|r| r.properties["MemorySize"].as_u64());
        own.or_else(|| self.globals["Function"]["MemorySize"].as_u64()).unwrap_or(128)
    }

    pub fn sqs_event_sources(&self) -> Vec<SqsEventSource> {
        let mut sources = Vec::new();
        for (function, resource) in self.of_kind("AWS::Serverless::Function") {
            let Some(events) = resource.properties["Events"].as_object() else { continue };
            for event in events.values().filter(|e| e["Type"] == "SQS") {
                let props = &event["Properties"];
                let Some(queue) = props["Queue"]["Fn::GetAtt"][0].as_str() else { continue };
                sources.push(SqsEventSource {
                    function: function.clone(),
                    queue: queue.to_owned(),
                    batch_size: props["BatchSize"].as_i64().unwrap_or(10) as i32,
                    report_batch_item_failures: props["FunctionResponseTypes"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
                });
            }
        }
        sources
    }

    /// How `function` is reached over HTTP: its `FunctionUrlConfig` when it has one (a function
    /// URL takes any path, so it wins over routes), else its `HttpApi` events; `None` when the
    /// template gives it neither.
    pub fn http_entry(&self, function: &str) -> Option<HttpEntry> {
        let properties = &self.resources.get(function)?.properties;
        if let Some(config) = properties.get("FunctionUrlConfig").filter(|c| c.is_object()) {
            let auth_type = config["AuthType"].as_str().unwrap_or("AWS_IAM").to_owned();
            return Some(HttpEntry::FunctionUrl { auth_type });
        }
        let events: Vec<&Value> = properties["Events"]
            .as_object()
            .into_iter()
            .flat_map(|events| events.values())
            .filter(|e| e["Type"] == "HttpApi")
            .collect();
        let api = events.iter().find_map(|e| e["Properties"]["ApiId"]["Ref"].as_str()).map(str::to_owned);
        let routes: Vec<HttpApiRoute> = events
            .iter()
            .map(|e| HttpApiRoute {
                method: e["Properties"]["Method"].as_str().unwrap_or("ANY").to_ascii_uppercase(),
                path: e["Properties"]["Path"].as_str().unwrap_or("/").to_owned(),
            })
            .collect();
        (!routes.is_empty()).then_some(HttpEntry::HttpApi { api, routes })
    }

    /// The functions with a `FunctionUrlConfig` (SAM names the URL resource `{function}Url`).
    pub fn function_urls(&self) -> Vec<String> {
        self.of_kind("AWS::Serverless::Function")
            .filter(|(_, r)| r.properties.get("FunctionUrlConfig").is_some_and(|c| c.is_object()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Rate schedules declared on functions (`ScheduleV2` events), as (function, expression).
    pub fn rate_schedules(&self) -> Vec<(String, Value)> {
        let mut schedules = Vec::new();
        for (function, resource) in self.of_kind("AWS::Serverless::Function") {
            let Some(events) = resource.properties["Events"].as_object() else { continue };
            for event in events.values().filter(|e| e["Type"] == "ScheduleV2") {
                schedules.push((function.clone(), event["Properties"]["ScheduleExpression"].clone()));
            }
        }
        schedules
    }
}

/// Resolves CloudFormation intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`) against local values.
pub trait Resolver {
    fn reference(&self, name: &str) -> Option<String>;
    fn attribute(&self, resource: &str, attribute: &str) -> Option<String>;

    fn resolve(&self, value: &Value) -> Result<String, TemplateError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Object(map) if map.len() == 1 => {
                let (function, argument) = map.iter().next().expect("one entry");
                match (function.as_str(), argument) {
                    ("Ref", Value::String(name)) => {
                        self.reference(name).ok_or_else(|| TemplateError::Unresolvable(format!("Ref {name}")))
                    }
                    ("Fn::GetAtt", Value::Array(parts)) if parts.len() == 2 => {
                        let (resource, attribute) = (parts[0].as_str().unwrap_or(""), parts[1].as_str().unwrap_or(""));
                        self.attribute(resource, attribute)
                            .ok_or_else(|| TemplateError::Unresolvable(format!("Fn::GetAtt {resource}.{attribute}")))
                    }
                    ("Fn::Sub", Value::String(text)) => self.substitute(text),
                    _ => Err(TemplateError::Unresolvable(format!("{function} {argument}"))),
                }
            }
            other => Err(TemplateError::Unresolvable(other.to_string())),
        }
    }

    fn substitute(&self, text: &str) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| TemplateError::Shape(format!("unclosed ${{ in {text}")))?;
            let name = &rest[start + 2..start + end];
            let value = match name.split_once('.') {
                Some((resource, attribute)) if !name.starts_with("AWS::") => self.attribute(resource, attribute),
                _ => self.reference(name),
            };
            out.push_str(&value.ok_or_else(|| TemplateError::Unresolvable(format!("${{{name}}}")))?);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_declares_every_function_the_workspace_builds() {
        let template = Template::load().unwrap();
        let functions: Vec<_> = template.of_kind("AWS::Serverless::Function").map(|(n, _)| n.as_str()).collect();
        for expected in [
            "WebhookFunction",
            "ApiFunction",
            "SenderFunction",
            "FlowsFunction",
            "RetryFunction",
            "BroadcastFunction",
            "SweeperFunction",
        ] {
            assert!(functions.contains(&expected), "{expected} missing from the template");
        }
    }

    #[test]
    fn each_function_has_the_timeout_lambda_will_enforce() {
        let template = Template::load().unwrap();
        assert_eq!(template.function_timeout("SenderFunction"), std::time::Duration::from_secs(30));
        assert!(template.function_timeout("SweeperFunction") >= std::time::Duration::from_secs(60));
    }

    #[test]
    fn every_queue_with_a_consumer_has_a_dead_letter_queue() {
        let template = Template::load().unwrap();
        for source in template.sqs_event_sources() {
            let queue = &template.resources[&source.queue];
            assert!(queue.properties["RedrivePolicy"]["maxReceiveCount"].is_number(), "{} has no DLQ", source.queue);
            assert!(source.report_batch_item_failures, "{} must report batch item failures", source.function);
        }
    }

    #[test]
    fn the_webhook_is_a_function_url_without_authentication_and_the_api_stays_behind_the_http_api() {
        let template = Template::load().unwrap();
        assert_eq!(
            template.http_entry("WebhookFunction"),
            Some(HttpEntry::FunctionUrl { auth_type: "NONE".into() }),
            "Meta cannot sign AWS requests: the webhook checks X-Hub-Signature-256 itself"
        );
        assert_eq!(template.function_urls(), vec!["WebhookFunction".to_owned()]);
        let Some(HttpEntry::HttpApi { api, routes }) = template.http_entry("ApiFunction") else {
            panic!("the workspace API keeps its HTTP API route")
        };
        assert_eq!(api.as_deref(), Some("HttpApi"));
        assert_eq!(routes.iter().map(HttpApiRoute::route_key).collect::<Vec<_>>(), ["ANY /v1/{proxy+}"]);
        assert_eq!(template.http_entry("SenderFunction"), None);
    }

    #[test]
    fn a_function_url_config_is_read_whatever_else_the_function_declares() {
        let template = Template::parse(
            r#"
Resources:
  Hook:
    Type: AWS::Serverless::Function
    Properties:
      FunctionUrlConfig:
        AuthType: AWS_IAM
      Events:
        Old:
          Type: HttpApi
          Properties:
            Method: post
            Path: /hook
  Routed:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Get:
          Type: HttpApi
          Properties:
            Method: get
            Path: /x
"#,
        )
        .unwrap();
        assert_eq!(template.http_entry("Hook"), Some(HttpEntry::FunctionUrl { auth_type: "AWS_IAM".into() }));
        assert_eq!(
            template.http_entry("Routed"),
            Some(HttpEntry::HttpApi {
                api: None,
                routes: vec![HttpApiRoute { method: "GET".into(), path: "/x".into() }]
            })
        );
        assert_eq!(template.function_urls(), vec!["Hook".to_owned()]);
        assert_eq!(template.http_entry("Missing"), None);
    }

    struct Fixed;
    impl Resolver for Fixed {
        fn reference(&self, name: &str) -> Option<String> {
            (name == "AWS::Region").then(|| "us-east-1".into())
        }
        fn attribute(&self, resource: &str, attribute: &str) -> Option<String> {
            Some(format!("{resource}:{attribute}"))
        }
    }

    #[test]
    fn sub_resolves_references_and_attributes() {
        let value = serde_json::json!({"Fn::Sub": "arn:${AWS::Region}:${Queue.Arn}/x"});
        assert_eq!(Fixed.resolve(&value).unwrap(), "arn:us-east-1:Queue:Arn/x");
    }
}
