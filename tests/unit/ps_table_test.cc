// `resident ps`'s table: Ollama's columns and formatting rules, at fixed times.
#include "cli/ps_table.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace resident::cli {
namespace {

using nlohmann::json;

TEST(PsTable, DurationsAndSizesReadAsOllamasDo) {
  EXPECT_EQ(HumanDuration(0.4), "Less than a second");
  EXPECT_EQ(HumanDuration(1.9), "1 second");
  EXPECT_EQ(HumanDuration(42), "42 seconds");
  EXPECT_EQ(HumanDuration(119), "About a minute");
  EXPECT_EQ(HumanDuration(299.5), "4 minutes");  // keep_alive 5m, half a second later
  EXPECT_EQ(HumanDuration(59 * 60 + 59), "59 minutes");
  EXPECT_EQ(HumanDuration(3600 * 1.4), "About an hour");
  EXPECT_EQ(HumanDuration(3600 * 1.6), "2 hours");
  EXPECT_EQ(HumanDuration(3600 * 47), "47 hours");
  EXPECT_EQ(HumanDuration(86400 * 3), "3 days");
  EXPECT_EQ(HumanDuration(86400 * 20), "2 weeks");
  EXPECT_EQ(HumanDuration(86400 * 100), "3 months");
  EXPECT_EQ(HumanDuration(86400 * 365 * 3), "3 years");

  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1500), "1.5 KB");
  EXPECT_EQ(HumanBytes(2000000), "2 MB");
  EXPECT_EQ(HumanBytes(68599808), "68 MB");
  EXPECT_EQ(HumanBytes(1234567890), "1.2 GB");

  EXPECT_EQ(Processor(1000, 0), "100% CPU");
  EXPECT_EQ(Processor(1000, 1000), "100% GPU");
  EXPECT_EQ(Processor(1000, 520), "48%/52% CPU/GPU");
  EXPECT_EQ(Processor(1000, 2000), "Unknown");
}

TEST(PsTable, UntilSaysFromNowForeverOrStopping) {
  const double now = 1'800'000'000;
  EXPECT_EQ(Until(now + 299.9, now), "4 minutes from now");
  EXPECT_EQ(Until(now + 30, now), "30 seconds from now");
  EXPECT_EQ(Until(now + 200.0 * 365 * 86400, now), "Forever");  // how the server writes forever
  EXPECT_EQ(Until(now + 10.0 * 365 * 86400, now), "10 years from now");
  EXPECT_EQ(Until(now - 0.5, now), "Stopping...");  // its time has passed: an unload is under way
  EXPECT_EQ(Until(now, now), "Less than a second from now");
}

TEST(PsTable, ParsesTheServersTimes) {
  EXPECT_DOUBLE_EQ(*ParseRfc3339Seconds("2027-01-15T08:00:00Z"), 1800000000.0);
  EXPECT_NEAR(*ParseRfc3339Seconds("2027-01-15T08:00:00.250000000Z"), 1800000000.25, 1e-6);
  EXPECT_DOUBLE_EQ(*ParseRfc3339Seconds("2027-01-15T09:30:00+01:30"), 1800000000.0);
  EXPECT_GT(*ParseRfc3339Seconds("2262-04-11T23:47:16.854775807Z"), 9.2e9);  // the clock's end
  EXPECT_FALSE(ParseRfc3339Seconds("soon").ok());
  EXPECT_FALSE(ParseRfc3339Seconds("2027-01-15T08:00:00").ok());
}

TEST(PsTable, PrintsOllamasColumnsFourSpacesApart) {
  json ps = json::parse(R"({"models":[
    {"name":"tiny:latest","digest":"0f4c7e1d2a3b4c5d6e7f","size":68599808,"size_vram":0,"context_length":2048,
     "expires_at":"2027-01-15T08:04:59.900000000Z"},
    {"name":"me/longer-name:v2","digest":"sha256:aabbccddeeff00112233","size":1234567890,"size_vram":0,
     "context_length":8192,"expires_at":"2226-01-15T08:00:00Z"}]})");
  auto table = FormatPsTable(ps, 1800000000.0);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(*table,
            "NAME                 ID              SIZE      PROCESSOR    CONTEXT    UNTIL\n"
            "tiny:latest          0f4c7e1d2a3b    68 MB     100% CPU     2048       4 minutes from now\n"
            "me/longer-name:v2    aabbccddeeff    1.2 GB    100% CPU     8192       Forever\n");
  auto empty = FormatPsTable(json::parse(R"({"models":[]})"), 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL\n");
  EXPECT_FALSE(FormatPsTable(json::parse("[]"), 0).ok());
}

TEST(PsTable, AStateColumnOnlyWhileAModelSleeps) {
  json ps = json::parse(R"({"models":[
    {"name":"tiny:latest","digest":"0f4c7e1d2a3b4c5d6e7f","size":68599808,"size_vram":0,"context_length":2048,
     "expires_at":"2027-01-15T08:04:59.900000000Z","state":"loaded"},
    {"name":"big:latest","digest":"aabbccddeeff00112233","size":1634567890,"size_vram":0,"context_length":8192,
     "expires_at":"2027-01-15T08:04:59.900000000Z","state":"sleeping"}]})");
  auto table = FormatPsTable(ps, 1800000000.0);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(*table,
            "NAME           ID              SIZE      PROCESSOR    CONTEXT    UNTIL                 STATE\n"
            "tiny:latest    0f4c7e1d2a3b    68 MB     100% CPU     2048       4 minutes from now    loaded\n"
            "big:latest     aabbccddeeff    1.6 GB    100% CPU     8192       4 minutes from now    sleeping\n");
  // Every model loaded (the server says so, or an older server or Ollama says nothing): Ollama's table.
  ps["models"][1]["state"] = "loaded";
  ps["models"][0].erase("state");
  auto plain = FormatPsTable(ps, 1800000000.0);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("STATE"), std::string::npos) << *plain;
  EXPECT_EQ(plain->rfind("NAME           ID              SIZE      PROCESSOR    CONTEXT    UNTIL\n", 0), 0u) << *plain;
}

TEST(PsTable, ANodeColumnForSeveralNodesAnswersMerged) {
  json ps = json::parse(R"({"models":[
    {"name":"tiny:latest","digest":"0f4c7e1d2a3b4c5d6e7f","size":68599808,"size_vram":0,"context_length":2048,
     "expires_at":"2027-01-15T08:04:59.900000000Z","node":"10.0.0.1:11434"},
    {"name":"big:latest","digest":"aabbccddeeff00112233","size":1634567890,"size_vram":0,"context_length":8192,
     "expires_at":"2027-01-15T08:04:59.900000000Z","node":"10.0.0.2:11434"}]})");
  auto table = FormatPsTable(ps, 1800000000.0);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(*table,
            "NAME           ID              SIZE      PROCESSOR    CONTEXT    UNTIL                 NODE\n"
            "tiny:latest    0f4c7e1d2a3b    68 MB     100% CPU     2048       4 minutes from now    10.0.0.1:11434\n"
            "big:latest     aabbccddeeff    1.6 GB    100% CPU     8192       4 minutes from now    10.0.0.2:11434\n");
}

}  // namespace
}  // namespace resident::cli
