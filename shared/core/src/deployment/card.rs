//! Finding a central version's model card, and making sure it describes that version.

use crate::domain::card::{card_name, described_version};
use crate::domain::ids::ModelPackageArn;
use crate::ports::{CardSnapshot, ModelCards, PortResult};

/// What a look-up of a version's card found.
#[derive(Debug, Clone, PartialEq)]
pub enum CardLookup {
    /// The card, whose content names the version.
    Found {
        name: String,
        card: CardSnapshot,
    },
    /// A card under the version's name (or its group's) whose content names another version, or
    /// none: an update would write one version's notes into another's card.
    DescribesAnother {
        name: String,
        describes: Option<String>,
    },
    Absent,
}

/// The version's own card, or, for a version promoted while cards were kept per group, its
/// group's card (named as the group): the pipeline's notes must not be dropped for those. The
/// first card found must name the version in its content (`model_package_details`).
pub async fn card_of(cards: &dyn ModelCards, package: &ModelPackageArn) -> PortResult<CardLookup> {
    for name in [card_name(package), package.group().to_string()] {
        let Some(card) = cards.describe(&name).await? else { continue };
        return Ok(match described_version(&card.content) {
            Some(described) if described == package.as_str() => CardLookup::Found { name, card },
            other => CardLookup::DescribesAnother { name, describes: other.map(str::to_owned) },
        });
    }
    Ok(CardLookup::Absent)
}

/// The card that describes the version, if there is one; a card that describes another version
/// is never returned, so no update reaches it.
pub async fn version_card(cards: &dyn ModelCards, package: &ModelPackageArn) -> PortResult<Option<(String, CardSnapshot)>> {
    Ok(match card_of(cards, package).await? {
        CardLookup::Found { name, card } => Some((name, card)),
        CardLookup::DescribesAnother { .. } | CardLookup::Absent => None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fakes::FakeCards;

    fn describing(package: &str) -> serde_json::Value {
        json!({ "model_package_details": { "model_package_arn": package } })
    }

    #[tokio::test]
    async fn a_version_s_own_card_comes_first_and_a_group_card_of_earlier_releases_stands_in() {
        let cards = FakeCards::default();
        let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/2".parse().unwrap();
        assert!(version_card(&cards, &package).await.unwrap().is_none());
        cards.create("churn-111111111111", &describing(package.as_str())).await.unwrap();
        assert_eq!(version_card(&cards, &package).await.unwrap().map(|(name, _)| name).as_deref(), Some("churn-111111111111"));
        let mut own = describing(package.as_str());
        own["kept"] = "per version".into();
        cards.create("churn-111111111111-v2", &own).await.unwrap();
        let (name, card) = version_card(&cards, &package).await.unwrap().unwrap();
        assert_eq!((name.as_str(), card.content["kept"].as_str()), ("churn-111111111111-v2", Some("per version")));
    }

    #[tokio::test]
    async fn a_card_that_describes_another_version_is_never_handed_out() {
        let cards = FakeCards::default();
        let v1: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap();
        let v2 = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/2";
        // The group's card of the per-group days, since rewritten for v2.
        cards.create("churn-111111111111", &describing(v2)).await.unwrap();

        assert_eq!(card_of(&cards, &v1).await.unwrap(), CardLookup::DescribesAnother { name: "churn-111111111111".into(), describes: Some(v2.into()) });
        assert!(version_card(&cards, &v1).await.unwrap().is_none());
        // A card under v1's own name that names no version is no card of v1 either.
        cards.create("churn-111111111111-v1", &json!({ "model_overview": {} })).await.unwrap();
        assert_eq!(card_of(&cards, &v1).await.unwrap(), CardLookup::DescribesAnother { name: "churn-111111111111-v1".into(), describes: None });
    }
}
