//! Creates, on the emulator, the resources `infra/template.yaml` declares: the table with its
//! index and TTL, the queues with their redrive policies, the KMS key, the schedule group and
//! the Meta secrets.
//! Every name carries a prefix, so stacks (and tests) sharing one emulator never meet.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use wapisnap::aws::{AwsClients, LOCAL_REGION};
use wapisnap::config::Env;

use crate::template::{Resolver, Template, TemplateError};

/// moto's default account.
pub const LOCAL_ACCOUNT: &str = "123456789012";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("creating {resource} on the emulator failed: {reason}")]
    Aws { resource: String, reason: String },
    #[error("template parameter {0} has no default and no local value")]
    MissingParameter(String),
}

/// What one resource became locally: the value of `Ref` and of each `Fn::GetAtt`.
#[derive(Debug, Clone, Default)]
struct Physical {
    reference: String,
    attributes: BTreeMap<String, String>,
}

/// The provisioned stack: physical names, URLs and ARNs by logical id.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub prefix: String,
    parameters: BTreeMap<String, String>,
    physical: BTreeMap<String, Physical>,
}

/// A queue's local identity.
#[derive(Debug, Clone)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
    pub name: String,
}

impl Resolver for Provisioned {
    fn reference(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Region" => Some(LOCAL_REGION.into()),
            "AWS::AccountId" => Some(LOCAL_ACCOUNT.into()),
            "AWS::Partition" => Some("aws".into()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            "AWS::StackName" => Some(self.prefix.clone()),
            _ => self.parameters.get(name).cloned().or_else(|| self.physical.get(name).map(|p| p.reference.clone())),
        }
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Option<String> {
        self.physical.get(resource)?.attributes.get(attribute).cloned()
    }
}

impl Provisioned {
    pub fn queue(&self, logical: &str) -> Option<QueueRef> {
        Some(QueueRef {
            url: self.reference(logical)?,
            arn: self.attribute(logical, "Arn")?,
            name: self.attribute(logical, "QueueName")?,
        })
    }

    pub fn table_name(&self) -> String {
        self.reference("Table").unwrap_or_default()
    }

    /// The secret holding the Meta app secret and verify token (`MetaSecrets`).
    pub fn meta_secrets_arn(&self) -> Option<String> {
        self.reference("MetaSecrets")
    }

    pub fn schedule_group(&self) -> String {
        self.reference("ScheduleGroup").unwrap_or_default()
    }

    /// The URL Lambda gives `function`'s `FunctionUrlConfig` (`https://<url-id>.lambda-url.<region>.on.aws/`).
    pub fn function_url(&self, function: &str) -> Option<String> {
        self.attribute(&format!("{function}Url"), "FunctionUrl")
    }

    /// The function's logical id for a physical ARN (what a schedule's target names).
    pub fn function_by_arn(&self, arn: &str) -> Option<String> {
        self.physical
            .iter()
            .find(|(_, p)| p.attributes.get("Arn").is_some_and(|a| a == arn) && arn.contains(":function:"))
            .map(|(logical, _)| logical.clone())
    }

    /// Exactly the environment the template gives `function`, resolved against local values.
    pub fn function_env(&self, template: &Template, function: &str) -> Result<Env, TemplateError> {
        let mut pairs = Vec::new();
        for (name, value) in template.function_environment(function)? {
            pairs.push((name, self.resolve(&value)?));
        }
        Ok(Env::from_pairs(pairs))
    }
}

pub async fn provision(
    aws: &AwsClients,
    secrets_manager: &aws_sdk_secretsmanager::Client,
    template: &Template,
    prefix: &str,
    local_parameters: &BTreeMap<String, String>,
) -> Result<Provisioned, ProvisionError> {
    let mut parameters = BTreeMap::new();
    for (name, declaration) in &template.parameters {
        let value = match (local_parameters.get(name), &declaration["Default"]) {
            (Some(v), _) => v.clone(),
            (None, Value::String(s)) => s.clone(),
            (None, Value::Number(n)) => n.to_string(),
            (None, _) => return Err(ProvisionError::MissingParameter(name.clone())),
        };
        parameters.insert(name.clone(), value);
    }
    let mut stack = Provisioned { prefix: prefix.to_owned(), parameters, physical: BTreeMap::new() };

    for (logical, resource) in &template.resources {
        let name = format!("{prefix}-{logical}");
        let physical = match resource.kind.as_str() {
            "AWS::DynamoDB::Table" => create_table(aws, &name, &resource.properties).await?,
            "AWS::KMS::Key" => create_key(aws, &name).await?,
            "AWS::Scheduler::ScheduleGroup" => create_schedule_group(aws, &name).await?,
            "AWS::SecretsManager::Secret" => {
                let value = stack.resolve(&resource.properties["SecretString"])?;
                create_secret(secrets_manager, &name, value).await?
            }
            "AWS::IAM::Role" => arn_only(&name, format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{name}")),
            "AWS::Serverless::Function" => {
                let arn = format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{name}");
                if resource.properties.get("FunctionUrlConfig").is_some_and(|c| c.is_object()) {
                    // SAM's generated `{function}Url`; the runner serves it and names its
                    // domain in the events it builds.
                    stack.physical.insert(format!("{logical}Url"), function_url(&name, &arn));
                }
                arn_only(&name, arn)
            }
            // The runner plays the HTTP API; locally it is only an id (`Ref`) for its events.
            "AWS::Serverless::HttpApi" => Physical { reference: local_id(&name, 10), attributes: BTreeMap::new() },
            _ => continue, // queues below, once their dead-letter queues exist
        };
        stack.physical.insert(logical.clone(), physical);
    }
    // Dead-letter queues first: a redrive policy names its DLQ's ARN.
    let mut queues: Vec<_> = template.of_kind("AWS::SQS::Queue").collect();
    queues.sort_by_key(|(_, r)| r.properties.get("RedrivePolicy").is_some());
    for (logical, resource) in queues {
        let physical = create_queue(aws, &stack, &format!("{prefix}-{logical}"), &resource.properties).await?;
        stack.physical.insert(logical.clone(), physical);
    }
    Ok(stack)
}

/// `Ref` of a secret is its ARN.
async fn create_secret(
    secrets_manager: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: String,
) -> Result<Physical, ProvisionError> {
    let created =
        secrets_manager.create_secret().name(name).secret_string(value).send().await.map_err(|e| aws_error(name, e))?;
    let arn = created.arn().unwrap_or_default().to_owned();
    Ok(Physical { reference: arn.clone(), attributes: BTreeMap::from([("Id".to_owned(), arn)]) })
}

/// A stable id of `len` lowercase hex characters for a local resource (API Gateway ids are 10
/// characters, function URL ids 32).
fn local_id(name: &str, len: usize) -> String {
    use sha2::Digest;
    let mut id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    id.truncate(len);
    id
}

/// A function URL (`AWS::Lambda::Url`): `Ref` and `FunctionArn` are the function's ARN,
/// `FunctionUrl` is `https://<url-id>.lambda-url.<region>.on.aws/` as Lambda gives it.
fn function_url(function_name: &str, function_arn: &str) -> Physical {
    let url = format!("https://{}.lambda-url.{LOCAL_REGION}.on.aws/", local_id(function_name, 32));
    Physical {
        reference: function_arn.to_owned(),
        attributes: BTreeMap::from([
            ("FunctionArn".to_owned(), function_arn.to_owned()),
            ("FunctionUrl".to_owned(), url),
        ]),
    }
}

fn arn_only(name: &str, arn: String) -> Physical {
    Physical { reference: name.to_owned(), attributes: BTreeMap::from([("Arn".to_owned(), arn)]) }
}

fn aws_error(resource: &str, err: impl std::fmt::Debug) -> ProvisionError {
    ProvisionError::Aws { resource: resource.to_owned(), reason: format!("{err:?}") }
}

fn key_schema(elements: &Value) -> Vec<KeySchemaElement> {
    elements
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            KeySchemaElement::builder()
                .attribute_name(e["AttributeName"].as_str()?)
                .key_type(KeyType::from(e["KeyType"].as_str()?))
                .build()
                .ok()
        })
        .collect()
}

async fn create_table(aws: &AwsClients, name: &str, props: &Value) -> Result<Physical, ProvisionError> {
    let mut request = aws
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(props["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST")))
        .set_key_schema(Some(key_schema(&props["KeySchema"])));
    for definition in props["AttributeDefinitions"].as_array().into_iter().flatten() {
        let definition = AttributeDefinition::builder()
            .attribute_name(definition["AttributeName"].as_str().unwrap_or_default())
            .attribute_type(ScalarAttributeType::from(definition["AttributeType"].as_str().unwrap_or("S")))
            .build()
            .map_err(|e| aws_error(name, e))?;
        request = request.attribute_definitions(definition);
    }
    for index in props["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        let non_key: Vec<String> = index["Projection"]["NonKeyAttributes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(index["Projection"]["ProjectionType"].as_str().unwrap_or("ALL")))
            .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
            .build();
        let index = GlobalSecondaryIndex::builder()
            .index_name(index["IndexName"].as_str().unwrap_or_default())
            .set_key_schema(Some(key_schema(&index["KeySchema"])))
            .projection(projection)
            .build()
            .map_err(|e| aws_error(name, e))?;
        request = request.global_secondary_indexes(index);
    }
    let created = request.send().await.map_err(|e| aws_error(name, e))?;
    if let Some(attribute) = props["TimeToLiveSpecification"]["AttributeName"].as_str() {
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(props["TimeToLiveSpecification"]["Enabled"].as_bool().unwrap_or(true))
            .build()
            .map_err(|e| aws_error(name, e))?;
        aws.dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| aws_error(name, e))?;
    }
    let arn = created.table_description().and_then(|d| d.table_arn()).unwrap_or_default().to_owned();
    Ok(Physical { reference: name.to_owned(), attributes: BTreeMap::from([("Arn".to_owned(), arn)]) })
}

async fn create_key(aws: &AwsClients, name: &str) -> Result<Physical, ProvisionError> {
    let created = aws.kms.create_key().description(name).send().await.map_err(|e| aws_error(name, e))?;
    let metadata = created.key_metadata().ok_or_else(|| aws_error(name, "no key metadata"))?;
    Ok(Physical {
        reference: metadata.key_id().to_owned(),
        attributes: BTreeMap::from([("Arn".to_owned(), metadata.arn().unwrap_or_default().to_owned())]),
    })
}

async fn create_schedule_group(aws: &AwsClients, name: &str) -> Result<Physical, ProvisionError> {
    let created = aws.scheduler.create_schedule_group().name(name).send().await.map_err(|e| aws_error(name, e))?;
    Ok(Physical {
        reference: name.to_owned(),
        attributes: BTreeMap::from([("Arn".to_owned(), created.schedule_group_arn().to_owned())]),
    })
}

async fn create_queue(
    aws: &AwsClients,
    stack: &Provisioned,
    name: &str,
    props: &Value,
) -> Result<Physical, ProvisionError> {
    let fifo = props["FifoQueue"].as_bool().unwrap_or(false);
    let name = if fifo { format!("{name}.fifo") } else { name.to_owned() };
    let mut request = aws.sqs.create_queue().queue_name(&name);
    for (property, attribute) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        ("FifoQueue", QueueAttributeName::FifoQueue),
        ("ContentBasedDeduplication", QueueAttributeName::ContentBasedDeduplication),
    ] {
        if let Some(value) = props.get(property) {
            request = request.attributes(attribute, stack.resolve(value)?);
        }
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        let policy = serde_json::json!({
            "deadLetterTargetArn": stack.resolve(&redrive["deadLetterTargetArn"])?,
            "maxReceiveCount": stack.resolve(&redrive["maxReceiveCount"])?,
        });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request.send().await.map_err(|e| aws_error(&name, e))?.queue_url().unwrap_or_default().to_owned();
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_error(&name, e))?;
    let arn = attributes.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().unwrap_or_default();
    Ok(Physical {
        reference: url,
        attributes: BTreeMap::from([("Arn".to_owned(), arn), ("QueueName".to_owned(), name)]),
    })
}
