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
