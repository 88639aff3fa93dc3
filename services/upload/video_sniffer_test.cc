#include "services/upload/video_sniffer.h"

#include <string>

#include "gtest/gtest.h"

namespace pettube::upload {
namespace {

std::string Padded(std::string head) {
  head.resize(kSniffBytes, '\0');
  return head;
}

TEST(VideoSnifferTest, KnownContainersAreRecognised) {
  EXPECT_EQ(SniffVideoContainer(Padded(std::string("\0\0\0\x20" "ftypisom", 12))), "mp4");
  EXPECT_EQ(SniffVideoContainer(Padded(std::string("\0\0\0\x08" "wide", 8))), "mp4");
  EXPECT_EQ(SniffVideoContainer(Padded("\x1A\x45\xDF\xA3")), "matroska");
  EXPECT_EQ(SniffVideoContainer(Padded(std::string("RIFF\x10\0\0\0" "AVI LIST", 16))), "avi");
  EXPECT_EQ(SniffVideoContainer(Padded("FLV\x01\x05")), "flv");
  EXPECT_EQ(SniffVideoContainer(Padded("OggS")), "ogg");
  std::string ts(400, '\xff');
  ts[0] = 0x47;
  ts[188] = 0x47;
  EXPECT_EQ(SniffVideoContainer(ts), "mpegts");
}

TEST(VideoSnifferTest, OtherFilesAreNotVideos) {
  EXPECT_EQ(SniffVideoContainer(""), std::nullopt);
  EXPECT_EQ(SniffVideoContainer(Padded("%PDF-1.7")), std::nullopt);
  EXPECT_EQ(SniffVideoContainer(Padded("\x89PNG\r\n\x1a\n")), std::nullopt);
  EXPECT_EQ(SniffVideoContainer(Padded(std::string("RIFF\x10\0\0\0" "WAVEfmt ", 16))), std::nullopt);
  EXPECT_EQ(SniffVideoContainer("hello, world\n"), std::nullopt);
  // A lone 0x47 is not a transport stream.
  EXPECT_EQ(SniffVideoContainer(Padded("G")), std::nullopt);
}

}  // namespace
}  // namespace pettube::upload
