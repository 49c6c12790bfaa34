//! Finding a central version's model card.

use crate::domain::card::card_name;
use crate::domain::ids::ModelPackageArn;
use crate::ports::{CardSnapshot, ModelCards, PortResult};

/// The version's own card, or, for a version promoted while cards were kept per group, its
/// group's card (named as the group): the pipeline's notes must not be dropped for those.
pub async fn version_card(cards: &dyn ModelCards, package: &ModelPackageArn) -> PortResult<Option<(String, CardSnapshot)>> {
    for name in [card_name(package), package.group().to_string()] {
        if let Some(card) = cards.describe(&name).await? {
            return Ok(Some((name, card)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fakes::FakeCards;

    #[tokio::test]
    async fn a_version_s_own_card_comes_first_and_a_group_card_of_earlier_releases_stands_in() {
        let cards = FakeCards::default();
        let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/2".parse().unwrap();
        assert!(version_card(&cards, &package).await.unwrap().is_none());
        cards.create("churn-111111111111", &json!({ "kept": "per group" })).await.unwrap();
        assert_eq!(version_card(&cards, &package).await.unwrap().map(|(name, _)| name).as_deref(), Some("churn-111111111111"));
        cards.create("churn-111111111111-v2", &json!({ "kept": "per version" })).await.unwrap();
        let (name, card) = version_card(&cards, &package).await.unwrap().unwrap();
        assert_eq!((name.as_str(), card.content["kept"].as_str()), ("churn-111111111111-v2", Some("per version")));
    }
}
