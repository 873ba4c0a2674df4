#include "core/keep_alive.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace resident {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinI64 = std::numeric_limits<int64_t>::min();

KeepAliveInput Number(double v) { return {KeepAliveInput::Kind::kNumber, v, ""}; }
KeepAliveInput Text(std::string s) { return {KeepAliveInput::Kind::kString, 0, std::move(s)}; }
KeepAliveInput OfKind(KeepAliveInput::Kind k) { return {k, 0, ""}; }

// ---- ParseGoDuration: Go's parseDurationTests ---------------------------------------------

struct DurationCase {
  std::string in;
  Duration want;
};

TEST(KeepAliveGoDuration, ParsesGoVectors) {
  const std::vector<DurationCase> cases = {
      // simple
      {"0", Duration(0)},
      {"5s", seconds(5)},
      {"30s", seconds(30)},
      {"1478s", seconds(1478)},
      // sign
      {"-5s", -seconds(5)},
      {"+5s", seconds(5)},
      {"-0", Duration(0)},
      {"+0", Duration(0)},
      // decimal
      {"5.0s", seconds(5)},
      {"5.6s", seconds(5) + milliseconds(600)},
      {"5.s", seconds(5)},
      {".5s", milliseconds(500)},
      {"1.0s", seconds(1)},
      {"1.00s", seconds(1)},
      {"1.004s", seconds(1) + milliseconds(4)},
      {"1.0040s", seconds(1) + milliseconds(4)},
      {"100.00100s", seconds(100) + milliseconds(1)},
      {"1.s", seconds(1)},
      {".5m", seconds(30)},
      {"1.5h", minutes(90)},
      {"-1.5h", -minutes(90)},
      {"-.5h", -minutes(30)},
      // different units
      {"10ns", nanoseconds(10)},
      {"11us", microseconds(11)},
      {"12\u00b5s", microseconds(12)},  // U+00B5 micro sign
      {"12\u03bcs", microseconds(12)},  // U+03BC Greek mu
      {"1\u00b5s", microseconds(1)},
      {"1\u03bcs", microseconds(1)},
      {"13ms", milliseconds(13)},
      {"14s", seconds(14)},
      {"15m", minutes(15)},
      {"16h", hours(16)},
      // composite durations
      {"3h30m", hours(3) + minutes(30)},
      {"2h45m", hours(2) + minutes(45)},
      {"10.5s4m", minutes(4) + seconds(10) + milliseconds(500)},
      {"-2m3.4s", -(minutes(2) + seconds(3) + milliseconds(400))},
      {"1h2m3s4ms5us6ns",
       hours(1) + minutes(2) + seconds(3) + milliseconds(4) + microseconds(5) + nanoseconds(6)},
      {"39h9m14.425s", hours(39) + minutes(9) + seconds(14) + milliseconds(425)},
      // large value
      {"52763797000ns", nanoseconds(52763797000)},
      // more than 9 digits after the decimal point (golang.org/issue/6617)
      {"0.3333333333333333333h", minutes(20)},
      // 1<<53+1 cannot be stored exactly in a double
      {"9007199254740993ns", nanoseconds((int64_t{1} << 53) + 1)},
      // the largest and smallest int64 nanoseconds
      {"9223372036854775807ns", nanoseconds(kMaxI64)},
      {"9223372036854775.807us", nanoseconds(kMaxI64)},
      {"9223372036s854ms775us807ns", nanoseconds(kMaxI64)},
      {"-9223372036854775808ns", nanoseconds(kMinI64)},
      {"-9223372036854775.808us", nanoseconds(kMinI64)},
      {"-9223372036s854ms775us808ns", nanoseconds(kMinI64)},
      // largest negative round trip value (golang.org/issue/48629)
      {"-2562047h47m16.854775808s", nanoseconds(kMinI64)},
      // huge string (golang.org/issue/15011)
      {"0.100000000000000000000h", minutes(6)},
      // the first overflow check in leadingFraction
      {"0.830103483285477580700h", minutes(49) + seconds(48) + nanoseconds(372539827)},
      // the reference table's strings
      {"5m", minutes(5)},
      {"1h30m", minutes(90)},
      {"500ms", milliseconds(500)},
      {"2.5s", milliseconds(2500)},
      {"90s", seconds(90)},
      {"300ms", milliseconds(300)},
      {"-1m", -minutes(1)},
  };
  for (const DurationCase& c : cases) {
    SCOPED_TRACE(c.in);
    Result<Duration> got = ParseGoDuration(c.in);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(got->count(), c.want.count());
  }
}

struct ErrorCase {
  std::string in;
  std::string message;
};

TEST(KeepAliveGoDuration, ErrorsWithGoMessages) {
  const std::vector<ErrorCase> cases = {
      // Go's parseDurationErrorTests: invalid
      {"", R"(time: invalid duration "")"},
      {"3", R"(time: missing unit in duration "3")"},
      {"-", R"(time: invalid duration "-")"},
      {"s", R"(time: invalid duration "s")"},
      {".", R"(time: invalid duration ".")"},
      {"-.", R"(time: invalid duration "-.")"},
      {".s", R"(time: invalid duration ".s")"},
      {"+.s", R"(time: invalid duration "+.s")"},
      {"1d", R"(time: unknown unit "d" in duration "1d")"},
      {"\x85\x85", R"(time: invalid duration "\x85\x85")"},
      {"\xff" "ff", R"(time: invalid duration "\xffff")"},
      {"hello \xff" "ff world", R"(time: invalid duration "hello \xffff world")"},
      {"\uFFFD", R"(time: invalid duration "\xef\xbf\xbd")"},
      {"\uFFFD hello \uFFFD world",
       R"(time: invalid duration "\xef\xbf\xbd hello \xef\xbf\xbd world")"},
      // Go's parseDurationErrorTests: overflow
      {"9223372036854775810ns", R"(time: invalid duration "9223372036854775810ns")"},
      {"9223372036854775808ns", R"(time: invalid duration "9223372036854775808ns")"},
      {"-9223372036854775809ns", R"(time: invalid duration "-9223372036854775809ns")"},
      {"9223372036854776us", R"(time: invalid duration "9223372036854776us")"},
      {"3000000h", R"(time: invalid duration "3000000h")"},
      {"9223372036854775.808us", R"(time: invalid duration "9223372036854775.808us")"},
      {"9223372036854ms775us808ns", R"(time: invalid duration "9223372036854ms775us808ns")"},
      // more
      {"99999999999999999999s", R"(time: invalid duration "99999999999999999999s")"},
      {"2562048h", R"(time: invalid duration "2562048h")"},
      {"-1", R"(time: missing unit in duration "-1")"},
      {"300", R"(time: missing unit in duration "300")"},
      {"+0.5", R"(time: missing unit in duration "+0.5")"},
      {"5s3", R"(time: missing unit in duration "5s3")"},
      {"00", R"(time: missing unit in duration "00")"},
      {"0.0", R"(time: missing unit in duration "0.0")"},
      {"--5s", R"(time: invalid duration "--5s")"},
      {" 5s", R"(time: invalid duration " 5s")"},
      {"5s ", R"(time: unknown unit "s " in duration "5s ")"},
      {"1S", R"(time: unknown unit "S" in duration "1S")"},
      {"1sec", R"(time: unknown unit "sec" in duration "1sec")"},
      {"1h-5m", R"(time: unknown unit "h-" in duration "1h-5m")"},
      // quoting: backslash escapes for " and \, \xHH for control and non-ASCII bytes
      {"1\"", R"(time: unknown unit "\"" in duration "1\"")"},
      {"1\\", R"(time: unknown unit "\\" in duration "1\\")"},
      {"1\n", R"(time: unknown unit "\x0a" in duration "1\x0a")"},
      {"1\u00b5d", R"(time: unknown unit "\xc2\xb5d" in duration "1\xc2\xb5d")"},
      {"1\x7f", "time: unknown unit \"\x7f\" in duration \"1\x7f\""},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.in);
    Result<Duration> got = ParseGoDuration(c.in);
    ASSERT_FALSE(got.ok()) << got->count();
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(got.status().message(), c.message);
  }
}

TEST(KeepAliveGoDuration, AcceptsStringViewWithoutTerminator) {
  const std::string buf = "5m30";
  Result<Duration> got = ParseGoDuration(std::string_view(buf).substr(0, 2));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, minutes(5));
}

// ---- FormatGoDuration / ToString: Go's durationTests -------------------------------------

TEST(KeepAliveFormat, MatchesGoDurationString) {
  const std::vector<std::pair<std::string, Duration>> cases = {
      {"0s", Duration(0)},
      {"1ns", nanoseconds(1)},
      {"1.1\u00b5s", nanoseconds(1100)},
      {"2.2ms", microseconds(2200)},
      {"3.3s", milliseconds(3300)},
      {"4m5s", minutes(4) + seconds(5)},
      {"4m5.001s", minutes(4) + milliseconds(5001)},
      {"5h6m7.001s", hours(5) + minutes(6) + milliseconds(7001)},
      {"8m0.000000001s", minutes(8) + nanoseconds(1)},
      {"2562047h47m16.854775807s", nanoseconds(kMaxI64)},
      {"-2562047h47m16.854775808s", nanoseconds(kMinI64)},
      {"5m0s", minutes(5)},
      {"1h0m0s", hours(1)},
      {"1h30m0s", minutes(90)},
      {"300ms", milliseconds(300)},
      {"1.5s", milliseconds(1500)},
      {"-1m0s", -minutes(1)},
      {"-1ns", nanoseconds(-1)},
  };
  for (const auto& [want, d] : cases) {
    SCOPED_TRACE(want);
    EXPECT_EQ(FormatGoDuration(d), want);
    // Everything Go prints, Go parses back.
    Result<Duration> back = ParseGoDuration(want);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, d);
  }
}

TEST(KeepAliveFormat, KeepAliveToString) {
  EXPECT_EQ(KeepAlive::Forever().ToString(), "forever");
  EXPECT_EQ(KeepAlive::Of(minutes(5)).ToString(), "5m0s");
  EXPECT_EQ(KeepAlive::Of(Duration(0)).ToString(), "0s");
  EXPECT_EQ(KeepAlive().ToString(), "0s");
}

TEST(KeepAliveValue, OfNormalisesForever) {
  EXPECT_EQ(KeepAlive::Of(-minutes(1)), KeepAlive::Forever());
  EXPECT_EQ(KeepAlive::Of(nanoseconds(-1)), KeepAlive::Forever());
  EXPECT_EQ(KeepAlive::Of(Duration::max()), KeepAlive::Forever());
  EXPECT_FALSE(KeepAlive::Of(Duration(0)).forever);
  EXPECT_EQ(KeepAlive::Of(seconds(3)).duration, seconds(3));
  EXPECT_NE(KeepAlive::Of(seconds(3)), KeepAlive::Of(seconds(4)));
  EXPECT_EQ(KeepAlive::Forever().duration, Duration(0));
}

// ---- ParseKeepAlive: the reference table -------------------------------------------------

void ExpectKeepAlive(const KeepAliveInput& in, const KeepAlive& want) {
  Result<KeepAlive> got = ParseKeepAlive(in);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->forever, want.forever);
  EXPECT_EQ(got->duration.count(), want.duration.count());
}

void ExpectKeepAliveError(const KeepAliveInput& in, const std::string& message) {
  Result<KeepAlive> got = ParseKeepAlive(in);
  ASSERT_FALSE(got.ok()) << got->ToString();
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got.status().message(), message);
}

TEST(KeepAliveRequest, Numbers) {
  ExpectKeepAlive(Number(42), KeepAlive::Of(seconds(42)));
  ExpectKeepAlive(Number(42.5), KeepAlive::Of(milliseconds(42500)));
  ExpectKeepAlive(Number(0), KeepAlive::Of(Duration(0)));
  ExpectKeepAlive(Number(-0.0), KeepAlive::Of(Duration(0)));
  ExpectKeepAlive(Number(-1), KeepAlive::Forever());
  ExpectKeepAlive(Number(-3.14), KeepAlive::Forever());
  ExpectKeepAlive(Number(-1e300), KeepAlive::Forever());
  ExpectKeepAlive(Number(1e300), KeepAlive::Forever());
  ExpectKeepAlive(Number(std::numeric_limits<double>::infinity()), KeepAlive::Forever());
  ExpectKeepAlive(Number(-std::numeric_limits<double>::infinity()), KeepAlive::Forever());
  ExpectKeepAlive(Number(9.3e9), KeepAlive::Forever());           // 9.3e18 ns > int64
  ExpectKeepAlive(Number(9223372036.854775807), KeepAlive::Forever());  // rounds to 2^63 ns
  ExpectKeepAlive(Number(9.2e9), KeepAlive::Of(nanoseconds(int64_t{9'200'000'000'000'000'000})));
  ExpectKeepAlive(Number(0.5), KeepAlive::Of(milliseconds(500)));
  ExpectKeepAlive(Number(1e-10), KeepAlive::Of(Duration(0)));  // truncated, as Go
  ExpectKeepAlive(Number(1.5e-9), KeepAlive::Of(nanoseconds(1)));
  ExpectKeepAlive(Number(300), KeepAlive::Of(minutes(5)));
  ExpectKeepAliveError(Number(std::numeric_limits<double>::quiet_NaN()), "keep_alive: not a number");
}

TEST(KeepAliveRequest, Strings) {
  ExpectKeepAlive(Text("5m"), KeepAlive::Of(minutes(5)));
  ExpectKeepAlive(Text("1h30m"), KeepAlive::Of(minutes(90)));
  ExpectKeepAlive(Text("500ms"), KeepAlive::Of(milliseconds(500)));
  ExpectKeepAlive(Text("2.5s"), KeepAlive::Of(milliseconds(2500)));
  ExpectKeepAlive(Text("90s"), KeepAlive::Of(seconds(90)));
  ExpectKeepAlive(Text("300ms"), KeepAlive::Of(milliseconds(300)));
  ExpectKeepAlive(Text("10\u00b5s"), KeepAlive::Of(microseconds(10)));
  ExpectKeepAlive(Text("0"), KeepAlive::Of(Duration(0)));
  ExpectKeepAlive(Text("-0"), KeepAlive::Of(Duration(0)));
  ExpectKeepAlive(Text("+0"), KeepAlive::Of(Duration(0)));
  ExpectKeepAlive(Text("0s"), KeepAlive::Of(Duration(0)));
  ExpectKeepAlive(Text("-1m"), KeepAlive::Forever());
  ExpectKeepAlive(Text("-1ns"), KeepAlive::Forever());
  ExpectKeepAlive(Text("-9223372036854775808ns"), KeepAlive::Forever());
  ExpectKeepAlive(Text("9223372036854775807ns"), KeepAlive::Forever());  // Ollama's forever
  ExpectKeepAlive(Text("9223372036854775806ns"), KeepAlive::Of(nanoseconds(kMaxI64 - 1)));
}

TEST(KeepAliveRequest, StringErrors) {
  ExpectKeepAliveError(Text("-1"), R"(time: missing unit in duration "-1")");
  ExpectKeepAliveError(Text("300"), R"(time: missing unit in duration "300")");
  ExpectKeepAliveError(Text(""), R"(time: invalid duration "")");
  ExpectKeepAliveError(Text("1d"), R"(time: unknown unit "d" in duration "1d")");
  ExpectKeepAliveError(Text("forever"), R"(time: invalid duration "forever")");
  ExpectKeepAliveError(Text("9223372036854775808ns"),
                       R"(time: invalid duration "9223372036854775808ns")");
}

TEST(KeepAliveRequest, UnsupportedTypes) {
  // Ollama's 400 says fmt.Errorf("Unsupported type: '%s'", reflect.TypeOf(v)), a Go-ism
  // ('[]interface {}'); resident's says what a keep_alive may be and what it got.
  ExpectKeepAliveError(OfKind(KeepAliveInput::Kind::kBool),
                       "invalid keep_alive: expected a duration string or a number of seconds, got a boolean");
  ExpectKeepAliveError(OfKind(KeepAliveInput::Kind::kObject),
                       "invalid keep_alive: expected a duration string or a number of seconds, got an object");
  ExpectKeepAliveError(OfKind(KeepAliveInput::Kind::kArray),
                       "invalid keep_alive: expected a duration string or a number of seconds, got an array");
}

// ---- ParseKeepAliveEnv -------------------------------------------------------------------

void ExpectEnv(std::string_view value, const KeepAlive& want) {
  SCOPED_TRACE(std::string(value));
  std::optional<KeepAlive> got = ParseKeepAliveEnv(value);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->forever, want.forever);
  EXPECT_EQ(got->duration.count(), want.duration.count());
}

void ExpectEnvInvalid(std::string_view value) {
  SCOPED_TRACE(std::string(value));
  std::optional<KeepAlive> got = ParseKeepAliveEnv(value);
  EXPECT_FALSE(got.has_value()) << got->ToString();
}

TEST(KeepAliveEnvValue, Forms) {
  ExpectEnv(" \"60\" ", KeepAlive::Of(seconds(60)));
  ExpectEnv("'5m'", KeepAlive::Of(minutes(5)));
  ExpectEnv("-1", KeepAlive::Forever());
  ExpectEnv("0", KeepAlive::Of(Duration(0)));
  ExpectEnv("60", KeepAlive::Of(seconds(60)));
  ExpectEnv("+60", KeepAlive::Of(seconds(60)));
  ExpectEnv("007", KeepAlive::Of(seconds(7)));
  ExpectEnv("-0", KeepAlive::Of(Duration(0)));
  ExpectEnv("5m", KeepAlive::Of(minutes(5)));
  ExpectEnv("1h30m", KeepAlive::Of(minutes(90)));
  ExpectEnv("-5m", KeepAlive::Forever());
  ExpectEnv("-9223372036854775808", KeepAlive::Forever());
  ExpectEnv("\t5m\n", KeepAlive::Of(minutes(5)));
  ExpectEnv("\"'10s'\"", KeepAlive::Of(seconds(10)));  // every leading/trailing quote goes
  ExpectEnv("\"10s", KeepAlive::Of(seconds(10)));      // unbalanced too, as strings.Trim
  ExpectEnv("\u00a05m\u3000", KeepAlive::Of(minutes(5)));  // Unicode white space, as Go
  ExpectEnv("9223372036", KeepAlive::Of(seconds(9223372036)));
  ExpectEnv("9223372037", KeepAlive::Forever());  // seconds beyond int64 nanoseconds
  ExpectEnv("9223372036854775807", KeepAlive::Forever());
}

TEST(KeepAliveEnvValue, Invalid) {
  ExpectEnvInvalid("junk");
  ExpectEnvInvalid("");
  ExpectEnvInvalid("   ");
  ExpectEnvInvalid("\"\"");
  ExpectEnvInvalid("' 60 '");  // spaces are trimmed before quotes, not after
  ExpectEnvInvalid("1.5");
  ExpectEnvInvalid("1d");
  ExpectEnvInvalid("1_000");
  ExpectEnvInvalid("0x10");
  ExpectEnvInvalid("+");
  ExpectEnvInvalid("-");
  ExpectEnvInvalid("99999999999999999999");  // strconv.ParseInt: out of range
  ExpectEnvInvalid("9223372036854775808ns");
  ExpectEnvInvalid("\xc2");  // a broken UTF-8 byte is no space
}

// ---- DefaultKeepAliveFromEnv -------------------------------------------------------------

// Sets or unsets an environment variable for the life of the object, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

KeepAlive Default(std::string* warning) {
  *warning = "stale";  // must be cleared when there is nothing to say
  return DefaultKeepAliveFromEnv(warning);
}

TEST(KeepAliveEnvDefault, NeitherSetIsFiveMinutes) {
  ScopedEnv r("RESIDENT_KEEP_ALIVE", nullptr);
  ScopedEnv o("OLLAMA_KEEP_ALIVE", nullptr);
  std::string warning;
  EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(5)));
  EXPECT_EQ(warning, "");
  EXPECT_EQ(DefaultKeepAliveFromEnv(nullptr), KeepAlive::Of(minutes(5)));
}

TEST(KeepAliveEnvDefault, OllamaVariable) {
  ScopedEnv r("RESIDENT_KEEP_ALIVE", nullptr);
  std::string warning;
  {
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "10m");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(10)));
    EXPECT_EQ(warning, "");
  }
  {
    ScopedEnv o("OLLAMA_KEEP_ALIVE", " \"60\" ");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(seconds(60)));
  }
  {
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "-1");
    EXPECT_EQ(Default(&warning), KeepAlive::Forever());
  }
  {
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "0");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(Duration(0)));
    EXPECT_EQ(warning, "");
  }
  {
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "");  // set but empty: unset, no warning
    EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(5)));
    EXPECT_EQ(warning, "");
  }
  {
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "junk");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(5)));
    EXPECT_EQ(warning, R"(invalid OLLAMA_KEEP_ALIVE "junk": using the default keep_alive of 5m0s)");
    EXPECT_EQ(DefaultKeepAliveFromEnv(nullptr), KeepAlive::Of(minutes(5)));
  }
}

TEST(KeepAliveEnvDefault, ResidentVariableWins) {
  std::string warning;
  {
    ScopedEnv r("RESIDENT_KEEP_ALIVE", "1h");
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "10m");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(hours(1)));
    EXPECT_EQ(warning, "");
  }
  {
    ScopedEnv r("RESIDENT_KEEP_ALIVE", "-1m");
    ScopedEnv o(
        "OLLAMA_KEEP_ALIVE", nullptr);
    EXPECT_EQ(Default(&warning), KeepAlive::Forever());
  }
  {
    ScopedEnv r("RESIDENT_KEEP_ALIVE", "  ''  ");  // empty after trimming: falls through
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "10m");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(10)));
    EXPECT_EQ(warning, "");
  }
  {
    // An invalid value does not fall through to the other variable: 5 minutes and a warning.
    ScopedEnv r("RESIDENT_KEEP_ALIVE", "1d");
    ScopedEnv o("OLLAMA_KEEP_ALIVE", "10m");
    EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(5)));
    EXPECT_EQ(warning, R"(invalid RESIDENT_KEEP_ALIVE "1d": using the default keep_alive of 5m0s)");
  }
  {
    ScopedEnv r("RESIDENT_KEEP_ALIVE", "x\"y\n");
    ScopedEnv o("OLLAMA_KEEP_ALIVE", nullptr);
    EXPECT_EQ(Default(&warning), KeepAlive::Of(minutes(5)));
    EXPECT_EQ(warning,
              R"(invalid RESIDENT_KEEP_ALIVE "x\"y\x0a": using the default keep_alive of 5m0s)");
  }
}

}  // namespace
}  // namespace resident
