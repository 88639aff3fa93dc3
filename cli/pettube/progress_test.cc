#include "cli/pettube/progress.h"

#include <vector>

#include "gtest/gtest.h"

namespace pettube::cli {
namespace {

TEST(ProgressTest, FormatsBytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(5 << 20), "5.0 MiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.00 GiB");
}

TEST(ProgressTest, FormatsRateAndEta) {
  EXPECT_EQ(FormatRate(0), "-");
  EXPECT_EQ(FormatRate(2048), "2.0 KiB/s");
  EXPECT_EQ(FormatEta(absl::Seconds(5), true), "0:05");
  EXPECT_EQ(FormatEta(absl::Milliseconds(4100), true), "0:05");  // Rounded up.
  EXPECT_EQ(FormatEta(absl::Seconds(754), true), "12:34");
  EXPECT_EQ(FormatEta(absl::Seconds(3723), true), "1:02:03");
  EXPECT_EQ(FormatEta(absl::Seconds(5), false), "--:--");
}

TEST(ProgressTest, FormatsMediaDurationAndAge) {
  EXPECT_EQ(FormatMediaDuration(absl::Milliseconds(2040)), "2.0 s");
  EXPECT_EQ(FormatMediaDuration(absl::Seconds(125)), "2:05");
  EXPECT_EQ(FormatAge(absl::Milliseconds(10)), "just now");
  EXPECT_EQ(FormatAge(absl::Seconds(5)), "5 s ago");
  EXPECT_EQ(FormatAge(absl::Minutes(3)), "3 min ago");
  EXPECT_EQ(FormatAge(absl::Hours(2)), "2 h ago");
  EXPECT_EQ(FormatAge(absl::Hours(100)), "4 d ago");
}

TEST(ProgressTest, TransferLineShowsBarBytesRateAndEta) {
  EXPECT_EQ(FormatTransferLine(1 << 20, 2 << 20, 1 << 20, absl::Seconds(2), 10),
            "[#####-----]  50%  1.0 MiB / 2.0 MiB  512.0 KiB/s  ETA 0:02");
  // A resumed transfer: the bar counts every byte, the rate only this run's.
  EXPECT_EQ(FormatTransferLine(3 << 20, 4 << 20, 1 << 20, absl::Seconds(1), 10),
            "[#######---]  75%  3.0 MiB / 4.0 MiB  1.0 MiB/s  ETA 0:01");
  EXPECT_EQ(FormatTransferLine(0, 100, 0, absl::ZeroDuration(), 4),
            "[----]   0%  0 B / 100 B  -  ETA --:--");
  EXPECT_EQ(FormatTransferLine(100, 100, 100, absl::Seconds(1), 4),
            "[####] 100%  100 B / 100 B  100 B/s  ETA 0:00");
  EXPECT_EQ(FormatTransferLine(2048, 0, 2048, absl::Seconds(1)), "2.0 KiB  2.0 KiB/s");
}

struct FakeClock {
  absl::Time t = absl::FromUnixSeconds(1000);
  absl::Time Now() const { return t; }
};

TEST(TransferProgressTest, PlainOutputPrintsOneLinePerTenPercent) {
  FakeClock clock;
  std::vector<std::string> lines;
  TransferProgress p("f.mp4", 1000, /*terminal=*/false,
                     [&](const std::string& s) { lines.push_back(s); },
                     [&] { return clock.Now(); });
  p.Start(0);
  for (int done = 1; done <= 1000; ++done) {
    clock.t += absl::Milliseconds(1);
    p.Update(done);
  }
  p.Finish(1000);
  ASSERT_EQ(lines.size(), 11u);  // 0%, 10%, ..., 100%; the final one not repeated.
  EXPECT_EQ(lines.front().rfind("f.mp4 [--------------------]   0%", 0), 0u) << lines.front();
  EXPECT_NE(lines.back().find("100%  1000 B / 1000 B"), std::string::npos) << lines.back();
  for (const auto& l : lines) {
    EXPECT_EQ(l.find('\r'), std::string::npos) << "no control codes off a terminal";
    EXPECT_EQ(l.back(), '\n');
  }
}

TEST(TransferProgressTest, TerminalRedrawsAtMostEveryHundredMilliseconds) {
  FakeClock clock;
  std::vector<std::string> draws;
  TransferProgress p("f", 1000, /*terminal=*/true,
                     [&](const std::string& s) { draws.push_back(s); },
                     [&] { return clock.Now(); });
  p.Start(0);
  for (int i = 1; i <= 100; ++i) {
    clock.t += absl::Milliseconds(10);  // 1 s in all.
    p.Update(i * 10);
  }
  p.Finish(1000);
  EXPECT_GE(draws.size(), 10u);
  EXPECT_LE(draws.size(), 12u);
  EXPECT_EQ(draws.front().rfind("\r\x1b[2K", 0), 0u);
  EXPECT_EQ(draws.back().back(), '\n');
  EXPECT_NE(draws.back().find("100%"), std::string::npos);
}

TEST(TransferProgressTest, ResumeSaysWhereItStarts) {
  FakeClock clock;
  std::vector<std::string> lines;
  TransferProgress p("f", 4 << 20, false, [&](const std::string& s) { lines.push_back(s); },
                     [&] { return clock.Now(); });
  p.Start(2 << 20);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[0], "f: resuming at 2.0 MiB\n");
  EXPECT_NE(lines[1].find(" 50%"), std::string::npos) << lines[1];
}

}  // namespace
}  // namespace pettube::cli
