#include "base/text.h"

#include <string>

#include "gtest/gtest.h"

namespace fieldsync::base {
namespace {

TEST(Utf8Test, AsciiChineseAndEmojiAreValid) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("abc"));
  EXPECT_TRUE(IsValidUtf8("雙聯 甘肃"));
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
}

TEST(Utf8Test, SequenceLengthReportsTheCodePoint) {
  uint32_t code_point = 0;
  const std::string s = "a雙\xF0\x9F\x98\x80";
  EXPECT_EQ(Utf8SequenceLength(s, 0, &code_point), 1u);
  EXPECT_EQ(code_point, 'a');
  EXPECT_EQ(Utf8SequenceLength(s, 1, &code_point), 3u);
  EXPECT_EQ(code_point, 0x96D9u);
  EXPECT_EQ(Utf8SequenceLength(s, 4, &code_point), 4u);
  EXPECT_EQ(code_point, 0x1F600u);
}

TEST(Utf8Test, OverlongFormsAreRejected) {
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));                  // '/' in two bytes
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));                  // U+007F in two bytes
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));              // '/' in three bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));          // '/' in four bytes
  EXPECT_FALSE(IsValidUtf8(std::string("\xC0\x80", 2)));  // "modified UTF-8" NUL
}

TEST(Utf8Test, SurrogatesAndValuesPastTheLastCodePointAreRejected) {
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));          // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));          // U+DFFF
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));           // U+D7FF, just below
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));  // a five-byte form
}

TEST(Utf8Test, TruncatedSequencesAreRejected) {
  const std::string emoji = "\xF0\x9F\x98\x80";
  for (size_t cut = 1; cut < emoji.size(); ++cut) {
    EXPECT_FALSE(IsValidUtf8(emoji.substr(0, cut))) << cut;
    EXPECT_FALSE(IsValidUtf8("ok" + emoji.substr(0, cut))) << cut;
  }
  // A cut sequence followed by ASCII: the ASCII byte is not a continuation.
  EXPECT_FALSE(
      IsValidUtf8("\xF0\x9F\x98"
                  "a"));
  EXPECT_FALSE(IsValidUtf8("\x80"));  // a stray continuation byte
}

TEST(CleanTextTest, ControlCharactersAreRejectedUnlessMultilineAllowsThem) {
  EXPECT_TRUE(IsCleanText("張三", 64));
  EXPECT_FALSE(IsCleanText("", 64));
  EXPECT_FALSE(IsCleanText("abc", 2));
  EXPECT_FALSE(IsCleanText("a\nb", 64));
  EXPECT_TRUE(IsCleanText("a\nb\tc\r", 64, /*multiline=*/true));
  EXPECT_FALSE(IsCleanText(std::string("a\0b", 3), 64, /*multiline=*/true));
  EXPECT_FALSE(IsCleanText("a\x7f", 64, /*multiline=*/true));
  EXPECT_FALSE(IsCleanText("\xC0\xAF", 64));
}

TEST(PlainIdTest, AllowsTheIdAlphabetUpTo64Characters) {
  EXPECT_TRUE(IsPlainId("cadre-01.gs:unit_7"));
  EXPECT_TRUE(IsPlainId(std::string(64, 'a')));
  EXPECT_FALSE(IsPlainId(std::string(65, 'a')));
  EXPECT_FALSE(IsPlainId(""));
  EXPECT_FALSE(IsPlainId("a/b"));
  EXPECT_FALSE(IsPlainId("a b"));
  EXPECT_FALSE(IsPlainId("張"));
}

TEST(DigitsTest, OnlyAsciiDigitsCount) {
  EXPECT_TRUE(IsDigits(""));
  EXPECT_TRUE(IsDigits("620102001001"));
  EXPECT_FALSE(IsDigits("62010200100a"));
  EXPECT_FALSE(IsDigits("-1"));
  EXPECT_FALSE(IsDigits("１２"));  // full-width digits
}

TEST(UuidTest, OnlyLowercaseCanonicalFormPasses) {
  EXPECT_TRUE(IsUuid("123e4567-e89b-42d3-a456-426614174000"));
  EXPECT_FALSE(IsUuid("123E4567-E89B-42D3-A456-426614174000"));
  EXPECT_FALSE(IsUuid("123e4567e89b42d3a456426614174000"));
  EXPECT_FALSE(IsUuid("123e4567-e89b-42d3-a456-42661417400"));
  EXPECT_FALSE(IsUuid("123e4567-e89b-42d3-a456-4266141740000"));
  EXPECT_FALSE(IsUuid("123e4567-e89b-42d3-a456_426614174000"));
  EXPECT_FALSE(IsUuid("g23e4567-e89b-42d3-a456-426614174000"));
  EXPECT_FALSE(IsUuid(""));
}

}  // namespace
}  // namespace fieldsync::base
