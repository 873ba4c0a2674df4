#include "api/auth.h"

#include <gtest/gtest.h>

namespace resident::api {
namespace {

TEST(ConstantTimeEquals, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret2", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
  EXPECT_FALSE(ConstantTimeEquals("secretsecret", "secret"));  // a repetition of the key is not the key
}

TEST(CheckBearer, AcceptsOnlyTheKeyAsABearerToken) {
  EXPECT_EQ(CheckBearer("Bearer k3y", "k3y"), KeyCheck::kAccepted);
  EXPECT_EQ(CheckBearer("bearer k3y", "k3y"), KeyCheck::kAccepted);
  EXPECT_EQ(CheckBearer("  BEARER   k3y  ", "k3y"), KeyCheck::kAccepted);
  EXPECT_EQ(CheckBearer("Bearer k3y2", "k3y"), KeyCheck::kWrong);
  EXPECT_EQ(CheckBearer("Bearer K3Y", "k3y"), KeyCheck::kWrong);
  EXPECT_EQ(CheckBearer("", "k3y"), KeyCheck::kMissing);
  EXPECT_EQ(CheckBearer("Bearer", "k3y"), KeyCheck::kMissing);
  EXPECT_EQ(CheckBearer("Bearer  ", "k3y"), KeyCheck::kMissing);
  EXPECT_EQ(CheckBearer("Basic azN5Og==", "k3y"), KeyCheck::kMissing);
  EXPECT_EQ(CheckBearer("Bearerk3y", "k3y"), KeyCheck::kMissing);
  EXPECT_EQ(CheckBearer("k3y", "k3y"), KeyCheck::kMissing);
  // No key configured: everything passes.
  EXPECT_EQ(CheckBearer("", ""), KeyCheck::kAccepted);
}

}  // namespace
}  // namespace resident::api
