//! A small builder for DynamoDB update expressions. Every attribute name goes through a
//! placeholder, so DynamoDB's several hundred reserved words (`status`, `state`, `processed`,
//! ...) can never break an expression.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Default, Clone)]
pub struct Update {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    delete: Vec<String>,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    /// `#name` for an attribute.
    pub fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{}", attribute.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    /// `:vN` for a value.
    pub fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub fn set(mut self, attribute: &str, value: AttributeValue) -> Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.set.push(format!("{n} = {v}"));
        self
    }

    /// A `SET` clause written with placeholders from [`Self::name`] and [`Self::value`]
    /// (for paths inside maps).
    pub fn raw_set(mut self, clause: String) -> Self {
        self.set.push(clause);
        self
    }

    pub fn set_if_absent(mut self, attribute: &str, value: AttributeValue) -> Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.set.push(format!("{n} = if_not_exists({n}, {v})"));
        self
    }

    /// Appends to a list attribute, creating it when absent.
    pub fn append(mut self, attribute: &str, values: Vec<AttributeValue>) -> Self {
        let n = self.name(attribute);
        let empty = self.value(AttributeValue::L(Vec::new()));
        let v = self.value(AttributeValue::L(values));
        self.set.push(format!("{n} = list_append(if_not_exists({n}, {empty}), {v})"));
        self
    }

    pub fn add(mut self, attribute: &str, value: AttributeValue) -> Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.add.push(format!("{n} {v}"));
        self
    }

    /// Removes elements from a set attribute.
    pub fn delete(mut self, attribute: &str, value: AttributeValue) -> Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.delete.push(format!("{n} {v}"));
        self
    }

    pub fn remove(mut self, attribute: &str) -> Self {
        let n = self.name(attribute);
        self.remove.push(n);
        self
    }

    /// A condition written with `{name}` for attribute names and `{0}`, `{1}`... for values.
    pub fn condition(mut self, template: &str, attributes: &[&str], values: Vec<AttributeValue>) -> Self {
        let mut text = template.to_owned();
        for attribute in attributes {
            let n = self.name(attribute);
            text = text.replace(&format!("{{{attribute}}}"), &n);
        }
        for (i, value) in values.into_iter().enumerate() {
            let v = self.value(value);
            text = text.replace(&format!("{{{i}}}"), &v);
        }
        self.condition = Some(text);
        self
    }

    /// Leaves `mark` (fresh per write) on the item as `last_write`, and makes the write apply
    /// at most once: the SDK's second try of this very write, sent because the first one's
    /// answer was lost, is refused by the mark the first left, so an `ADD` is never counted
    /// twice. Call after [`Self::condition`], which this extends.
    pub fn once(mut self, mark: &str) -> Self {
        let (n, v) = (self.name("last_write"), self.value(AttributeValue::S(mark.to_owned())));
        self.set.push(format!("{n} = {v}"));
        let once = format!("(attribute_not_exists({n}) OR {n} <> {v})");
        self.condition = Some(match self.condition.take() {
            Some(condition) => format!("({condition}) AND {once}"),
            None => once,
        });
        self
    }

    pub fn apply(self, request: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        let mut expression = Vec::new();
        if !self.set.is_empty() {
            expression.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            expression.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        if !self.add.is_empty() {
            expression.push(format!("ADD {}", self.add.join(", ")));
        }
        if !self.delete.is_empty() {
            expression.push(format!("DELETE {}", self.delete.join(", ")));
        }
        let mut request = request
            .update_expression(expression.join(" "))
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values));
        if let Some(condition) = self.condition {
            request = request.condition_expression(condition);
        }
        request
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_use_placeholders_for_names_and_values() {
        let update = Update::new().set("state", s("SENDING")).condition(
            "{state} = {0} AND {attempt} = {1}",
            &["state", "attempt"],
            vec![s("RETRY_SCHEDULED"), n(2)],
        );
        assert_eq!(update.condition.as_deref(), Some("#state = :v1 AND #attempt = :v2"));
        assert_eq!(update.set, ["#state = :v0"]);
    }

    #[test]
    fn a_write_applied_once_keeps_its_condition_and_is_refused_by_its_own_mark() {
        let update = Update::new().add("rescued", n(1)).condition("{state} = {0}", &["state"], vec![s("QUEUED")]);
        let update = update.once("5eed");
        assert_eq!(
            update.condition.as_deref(),
            Some("(#state = :v1) AND (attribute_not_exists(#last_write) OR #last_write <> :v2)")
        );
        assert_eq!(update.set, ["#last_write = :v2"]);
        assert_eq!(update.values[":v2"], s("5eed"));
        let alone = Update::new().add("rescued", n(1)).once("5eed");
        assert_eq!(alone.condition.as_deref(), Some("(attribute_not_exists(#last_write) OR #last_write <> :v1)"));
    }
}
