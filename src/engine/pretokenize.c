/*
 * pretokenize.c — splitting text into words before byte-level BPE.
 *
 * llama.cpp runs most pre-tokenizer expressions through std::regex on a
 * "collapsed" copy of the text: every code point above U+007F becomes one
 * byte naming its class (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4
 * mark, 0xD5 symbol, 0x0B whitespace, 0xD0 anything else) and \p{..} in the
 * expression becomes a class of that byte plus the ASCII members.  We do the
 * same and hand the result to PCRE2 in 8-bit, non-UTF mode, which is why
 * quirks such as \p{S} not matching "~" are reproduced.  Expressions without
 * \p{..} run in UTF mode on the real code points (with non-ASCII whitespace
 * turned into U+000B, as llama.cpp does for std::wregex).
 *
 * Matches are enumerated the way std::regex_iterator does: after an empty
 * match the next attempt must be non-empty at the same place, else the scan
 * moves on by one character.  Empty pieces are dropped, as BPE ignores them.
 */
#include "pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

typedef enum rx_kind
{
	RX_END = 0,
	RX_REGEX,					/* PCRE2, collapsed or UTF mode */
	RX_GPT2,					/* GPT-2's expression, hand-written */
	RX_LLAMA3,					/* Llama 3's expression, hand-written */
	RX_KIMI_K2,					/* Kimi-K2's expressions, hand-written */
	RX_AFMOE_DIGITS				/* AFMoE's digit grouping */
} rx_kind;

typedef struct rx_def
{
	rx_kind		kind;
	const char *re;
} rx_def;

#define MAX_RX 8

/* The original expressions, kept for reference and for the collapsed path. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_QWEN2 RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK_KANA "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define RE_DS3_MAIN "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
#define RE_LOOKAHEAD_UPPER "((?=[\\p{L}])([^a-z]))"
#define RE_LOOKAHEAD_LOWER "((?=[\\p{L}])([^A-Z]))"
#define RE_TEKKEN_WORDS "[^\\r\\n\\p{L}\\p{N}]?" RE_LOOKAHEAD_UPPER "*" RE_LOOKAHEAD_LOWER "+|[^\\r\\n\\p{L}\\p{N}]?" RE_LOOKAHEAD_UPPER "+" RE_LOOKAHEAD_LOWER "*"
#define RE_CASED_WORDS "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" RE_CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" RE_CONTRACTIONS "?"
#define RE_TAIL_SLASH " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"

/* Expression lists, one per llama_vocab_pre_type that has its own. */
enum
{
	SET_DEFAULT,
	SET_LLAMA3,
	SET_JAIS2,
	SET_DEEPSEEK_LLM,
	SET_DEEPSEEK3,
	SET_SPARK2_5,
	SET_YOUTU,
	SET_DEEPSEEK_CODER,
	SET_FALCON,
	SET_STARCODER,
	SET_GPT2,
	SET_QWEN2,
	SET_QWEN35,
	SET_BLOOM,
	SET_VIKING,
	SET_TEKKEN,
	SET_CHAMELEON,
	SET_GPT4O,
	SET_GRANITE_EMB_MULTI,
	SET_TINY_AYA,
	SET_KIMI_K2,
	SET_SUPERBPE,
	SET_BAILINGMOE,
	SET_SEED_CODER,
	SET_UFAKZEKA,
	SET_AFMOE,
	SET_LAGUNA,
	SET_EXAONE_MOE,
	SET_NEWLINES,
	SET_MINICPM5,
	SET_COUNT
};

static const rx_def rx_sets[SET_COUNT][MAX_RX] = {
	[SET_DEFAULT] = {
		{RX_REGEX, "[\\p{P}\\$\\+<=>\\^~\\|]+"},
		{RX_GPT2, RE_GPT2},
		{RX_REGEX, "\\p{N}+"},
		{RX_REGEX, "[0-9][0-9][0-9]"},
	},
	[SET_LLAMA3] = {
		{RX_LLAMA3, RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	},
	[SET_JAIS2] = {
		{RX_REGEX, RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"},
	},
	[SET_DEEPSEEK_LLM] = {
		{RX_REGEX, "[\r\n]"},
		{RX_REGEX, "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"},
		{RX_REGEX, "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+"},
		{RX_REGEX, "\\s+$"},
		{RX_REGEX, "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"},
		{RX_REGEX, "\\p{N}+"},
	},
	[SET_DEEPSEEK3] = {
		{RX_REGEX, "\\p{N}{1,3}"},
		{RX_REGEX, RE_CJK_KANA},
		{RX_REGEX, RE_DS3_MAIN},
	},
	[SET_SPARK2_5] = {
		{RX_REGEX, "\\p{N}{1,3}"},
		{RX_REGEX, RE_CJK_KANA},
		{RX_REGEX, "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+"},
		{RX_REGEX, "\\p{N}"},
	},
	[SET_YOUTU] = {
		{RX_REGEX, "[\\x{AC00}-\\x{D7A3}\\x{3131}-\\x{318E}]+|[\\x{FF01}\\x{2026}\\x{201C}\\x{201D}\\x{2018}\\x{2019}\\x{2014}\\x{FF1A}\\x{FF1B}\\x{FF0C}\\x{3001}-\\x{303F}\\x{FE30}-\\x{FE4F}]+|[\\x{3105}-\\x{312F}]+|" RE_CJK_KANA},
		{RX_REGEX, RE_CASED_WORDS "|\\p{N}|" RE_TAIL_SLASH},
	},
	[SET_DEEPSEEK_CODER] = {
		{RX_REGEX, "[\r\n]"},
		{RX_REGEX, "\\s?\\p{L}+"},
		{RX_REGEX, "\\s?\\p{P}+"},
		{RX_REGEX, "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"},
		{RX_REGEX, "\\p{N}"},
	},
	[SET_FALCON] = {
		{RX_REGEX, "[\\p{P}\\$\\+<=>\\^~\\|`]+"},
		{RX_GPT2, RE_GPT2},
		{RX_REGEX, "[0-9][0-9][0-9]"},
	},
	[SET_STARCODER] = {
		{RX_REGEX, "\\p{N}"},
		{RX_GPT2, RE_GPT2},
	},
	[SET_GPT2] = {
		{RX_GPT2, RE_GPT2},
	},
	[SET_QWEN2] = {
		{RX_REGEX, RE_QWEN2},
	},
	[SET_QWEN35] = {
		{RX_REGEX, RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	},
	[SET_BLOOM] = {
		{RX_REGEX, RE_BLOOM},
	},
	[SET_VIKING] = {
		{RX_REGEX, RE_BLOOM},
		{RX_REGEX, "\\p{N}"},
	},
	[SET_TEKKEN] = {
		{RX_REGEX, RE_TEKKEN_WORDS "|\\p{N}|" RE_TAIL_SLASH},
	},
	[SET_CHAMELEON] = {
		{RX_REGEX, "<sentinel:[0-9]+>"},
		{RX_REGEX, "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"},
		{RX_REGEX, "([\\t\\n]|    |  )"},
		{RX_REGEX, "\\p{N}"},
		{RX_REGEX, "[\\p{P}!-/:-@\\[-`{-~]"},
		{RX_GPT2, RE_GPT2},
	},
	[SET_GPT4O] = {
		{RX_REGEX, "[^\\r\\n\\p{L}\\p{N}]?" RE_LOOKAHEAD_UPPER "*" RE_LOOKAHEAD_LOWER "+" RE_CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?" RE_LOOKAHEAD_UPPER "+" RE_LOOKAHEAD_LOWER "*" RE_CONTRACTIONS "?|\\p{N}{1,3}|" RE_TAIL_SLASH},
	},
	[SET_GRANITE_EMB_MULTI] = {
		{RX_REGEX, "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+" RE_CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*" RE_CONTRACTIONS "?|\\p{N}{1,3}|" RE_TAIL_SLASH},
	},
	[SET_TINY_AYA] = {
		{RX_REGEX, "\\d{1,3}(?=(?:\\d{3})*\\b)"},
		{RX_REGEX, RE_CASED_WORDS "|\\p{N}{1,3}|" RE_TAIL_SLASH},
	},
	[SET_KIMI_K2] = {
		{RX_KIMI_K2, "\\p{Han}+"},
	},
	[SET_SUPERBPE] = {
		{RX_REGEX, "\\p{N}+"},
		{RX_REGEX, "(?=(\\d{3})+(?!\\d))"},
	},
	[SET_BAILINGMOE] = {
		{RX_REGEX, "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
	},
	[SET_SEED_CODER] = {
		{RX_REGEX, RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	},
	[SET_UFAKZEKA] = {
		{RX_REGEX, "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	},
	[SET_AFMOE] = {
		{RX_AFMOE_DIGITS, "\\p{AFMoE_digits}"},
		{RX_REGEX, "[\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{F900}-\\x{FAFF}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}\\x{FF65}-\\x{FF9F}\\x{2F00}-\\x{2FDF}\\x{E40}-\\x{E7F}\\x{E80}-\\x{EFF}\\x{1780}-\\x{17FF}\\x{1000}-\\x{109F}\\x{AA60}-\\x{AA7F}\\x{A9E0}-\\x{A9FF}\\x{AC00}-\\x{D7AF}\\x{1100}-\\x{11FF}]+"},
		{RX_REGEX, "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	},
	[SET_LAGUNA] = {
		{RX_REGEX, "[^\\n]+|[\\n]+"},
		{RX_REGEX, RE_QWEN2},
	},
	[SET_EXAONE_MOE] = {
		{RX_REGEX, RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
	},
	[SET_NEWLINES] = {
		{RX_REGEX, "[^\\n]+|[\\n]+"},
	},
	[SET_MINICPM5] = {
		{RX_REGEX, "\\p{N}{1,3}"},
		{RX_REGEX, RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	},
};

#define NC	LG_PRE_NO_CLEAN_SPACES
#define IM	LG_PRE_IGNORE_MERGES
#define AB	LG_PRE_ADD_BOS

/* tokenizer.ggml.pre values, as llama_vocab::impl::load maps them. */
static const lg_pretok_def pretok_defs[] = {
	{"default", SET_DEFAULT, 0},
	{"minicpm5", SET_MINICPM5, IM},
	{"llama3", SET_LLAMA3, IM | AB},
	{"llama-v3", SET_LLAMA3, IM | AB},
	{"llama-bpe", SET_LLAMA3, IM | AB},
	{"falcon3", SET_LLAMA3, IM | AB},
	{"falcon-h1", SET_LLAMA3, IM | AB},
	{"pixtral", SET_LLAMA3, IM | AB},
	{"midm-2.0", SET_LLAMA3, IM | AB},
	{"lfm2", SET_LLAMA3, IM | AB},
	{"jina-v5-nano", SET_LLAMA3, IM | AB},
	{"deepseek-llm", SET_DEEPSEEK_LLM, NC},
	{"deepseek-coder", SET_DEEPSEEK_CODER, NC},
	{"deepseek-v3", SET_DEEPSEEK3, NC},
	{"spark2_5", SET_SPARK2_5, NC},
	{"youtu", SET_YOUTU, NC | IM},
	{"falcon", SET_FALCON, 0},
	{"mpt", SET_GPT2, 0},
	{"starcoder", SET_STARCODER, 0},
	{"gpt-2", SET_GPT2, 0},
	{"phi-2", SET_GPT2, 0},
	{"jina-es", SET_GPT2, 0},
	{"jina-de", SET_GPT2, 0},
	{"gigachat", SET_GPT2, 0},
	{"jina-v2-es", SET_GPT2, 0},
	{"jina-v2-de", SET_GPT2, 0},
	{"a.x-4.0", SET_GPT2, 0},
	{"mellum", SET_GPT2, 0},
	{"modern-bert", SET_GPT2, 0},
	{"jais-2", SET_JAIS2, 0},
	{"gemma4", SET_NEWLINES, LG_PRE_ESCAPE_SPACES | LG_PRE_RAW_UTF8 | LG_PRE_GEMMA4 | LG_PRE_FORCE_BOS},
	{"granite-embed-multi-311m", SET_NEWLINES, LG_PRE_ESCAPE_SPACES | LG_PRE_RAW_UTF8 | LG_PRE_GEMMA4 | LG_PRE_FORCE_BOS},
	{"sarvam-moe", SET_NEWLINES, NC | LG_PRE_ESCAPE_SPACES | LG_PRE_RAW_UTF8},
	{"jina-v1-en", SET_GPT2, LG_PRE_ADD_SEP},
	{"jina-v2-code", SET_GPT2, LG_PRE_ADD_SEP},
	{"roberta-bpe", SET_GPT2, LG_PRE_ADD_SEP},
	{"refact", SET_STARCODER, 0},
	{"command-r", SET_STARCODER, NC},
	{"qwen2", SET_QWEN2, NC},
	{"deepseek-r1-qwen", SET_QWEN2, NC},
	{"kormo", SET_QWEN2, NC},
	{"f2llmv2", SET_QWEN2, NC},
	{"qwen35", SET_QWEN35, NC},
	{"stablelm2", SET_QWEN2, 0},
	{"olmo", SET_GPT2, 0},
	{"dbrx", SET_LLAMA3, 0},
	{"smaug-bpe", SET_LLAMA3, 0},
	{"poro-chat", SET_BLOOM, NC},
	{"glm4", SET_LLAMA3, LG_PRE_NO_BOS_ID},
	{"chatglm-bpe", SET_LLAMA3, LG_PRE_NO_BOS_ID},
	{"viking", SET_VIKING, NC},
	{"jais", SET_GPT2, 0},
	{"tekken", SET_TEKKEN, NC | IM | AB},
	{"smollm", SET_STARCODER, NC},
	{"codeshell", SET_STARCODER, 0},
	{"bloom", SET_BLOOM, 0},
	{"gpt3-finnish", SET_BLOOM, 0},
	{"exaone", SET_STARCODER, 0},
	{"exaone4", SET_GPT2, 0},
	{"exaone-moe", SET_EXAONE_MOE, 0},
	{"chameleon", SET_CHAMELEON, AB | NC},
	{"minerva-7b", SET_STARCODER, 0},
	{"megrez", SET_QWEN2, 0},
	{"gpt-4o", SET_GPT4O, NC},
	{"llama4", SET_GPT4O, NC},
	{"kanana2", SET_GPT4O, NC},
	{"talkie", SET_GPT4O, NC},
	{"granite-embed-multi-97m", SET_GRANITE_EMB_MULTI, NC | IM},
	{"tiny_aya", SET_TINY_AYA, NC},
	{"cohere2moe", SET_TINY_AYA, NC},
	{"superbpe", SET_SUPERBPE, NC},
	{"trillion", SET_GPT2, NC},
	{"granite-docling", SET_GPT2, NC},
	{"bailingmoe", SET_BAILINGMOE, NC},
	{"bailingmoe2", SET_BAILINGMOE, NC},
	{"llada-moe", SET_BAILINGMOE, NC},
	{"seed-coder", SET_SEED_CODER, NC},
	{"hunyuan", SET_QWEN2, NC},
	{"hunyuan-dense", SET_DEEPSEEK3, NC},
	{"hy_v4", SET_DEEPSEEK3, NC},
	{"joyai-llm", SET_DEEPSEEK3, NC},
	{"kimi-k2", SET_KIMI_K2, NC},
	{"ufakzeka", SET_UFAKZEKA, NC},
	{"grok-2", SET_QWEN2, NC},
	{"afmoe", SET_AFMOE, NC},
	{"laguna", SET_LAGUNA, NC},
	{"minimax-m2", SET_GPT4O, NC},
	{"solar-open", SET_QWEN2, NC},
	{"mellum2", SET_STARCODER, 0},
};

typedef struct lg_regex
{
	rx_kind		kind;
	bool		collapsed;		/* runs on the one-byte-per-code-point text */
	pcre2_code *code;
} lg_regex;

struct lg_pretok
{
	const lg_pretok_def *def;
	int			n_rx;
	lg_regex	rx[MAX_RX];
	bool		need_collapsed;
	bool		need_wide;
};

/* Growable array of piece lengths. */
typedef struct lenvec
{
	size_t	   *v;
	size_t		n;
	size_t		cap;
} lenvec;

/* Append x; false when out of memory. */
static bool
lenvec_push(lenvec *lv, size_t x)
{
	if (lv->n == lv->cap)
	{
		size_t		cap = lv->cap ? lv->cap * 2 : 64;
		size_t	   *v = realloc(lv->v, cap * sizeof(size_t));

		if (v == NULL)
			return false;
		lv->v = v;
		lv->cap = cap;
	}
	lv->v[lv->n++] = x;
	return true;
}

/* Look a pre-tokenizer name up; names are short and few, so scan. */
const lg_pretok_def *
lg_pretok_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(pretok_defs) / sizeof(pretok_defs[0]); i++)
	{
		if (strlen(pretok_defs[i].name) == len && memcmp(pretok_defs[i].name, name, len) == 0)
			return &pretok_defs[i];
	}
	return NULL;
}

/* The \p{..} names llama.cpp collapses, and the class each becomes. */
static const struct
{
	const char *name;
	const char *collapsed;		/* class byte then the ASCII members */
}			ucat_map[] = {
	{"\\p{N}", "\xD1" "0-9"},
	{"\\p{L}", "\xD2" "A-Za-z"},
	{"\\p{P}", "\xD3" "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
	{"\\p{M}", "\xD4"},
	{"\\p{S}", "\xD5" "\\$\\+<->^`\\|"},
	{"\\p{Lu}", "\xD2" "A-Za-z"},
	{"\\p{Ll}", "\xD2" "A-Za-z"},
	{"\\p{Lt}", "\xD2" "A-Za-z"},
	{"\\p{Lm}", "\xD2" "A-Za-z"},
	{"\\p{Lo}", "\xD2" "A-Za-z"},
};

#define N_UCAT (sizeof(ucat_map) / sizeof(ucat_map[0]))

/* Does the expression use a category llama.cpp collapses? */
static bool
uses_categories(const char *re)
{
	for (size_t i = 0; i < N_UCAT; i++)
		if (strstr(re, ucat_map[i].name) != NULL)
			return true;
	return false;
}

/* Append len bytes to a growing string; false when out of memory. */
static bool
str_append(char **buf, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (*n + len + 1 > *cap)
	{
		size_t		ncap = (*n + len + 1) * 2;
		char	   *nb = realloc(*buf, ncap);

		if (nb == NULL)
			return false;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *n, s, len);
	*n += len;
	(*buf)[*n] = '\0';
	return true;
}

/* Replace every occurrence of from with to in place (to is never longer). */
static void
str_replace_all(char *s, const char *from, const char *to)
{
	size_t		lf = strlen(from);
	size_t		lt = strlen(to);
	char	   *p;

	while ((p = strstr(s, from)) != NULL)
	{
		memmove(p + lt, p + lf, strlen(p + lf) + 1);
		memcpy(p, to, lt);
	}
}

/*
 * Rewrite an expression for the collapsed text, as unicode_regex_split
 * does: \p{X} becomes [<class byte><ASCII members>] (without the brackets
 * inside a class).  Returns a malloc'd string or NULL when out of memory.
 */
static char *
collapse_regex(const char *re)
{
	size_t		len = strlen(re);
	char	   *out = NULL;
	size_t		n = 0;
	size_t		cap = 0;
	bool		inside = false;

	if (!str_append(&out, &n, &cap, "", 0))
		return NULL;
	for (size_t i = 0; i < len; i++)
	{
		if (re[i] == '[' && (i == 0 || re[i - 1] != '\\'))
		{
			inside = true;
			if (!str_append(&out, &n, &cap, "[", 1))
				goto oom;
			continue;
		}
		if (inside && re[i] == ']' && re[i - 1] != '\\')
		{
			inside = false;
			if (!str_append(&out, &n, &cap, "]", 1))
				goto oom;
			continue;
		}
		if (re[i] == '\\' && i + 3 < len && re[i + 1] == 'p' && re[i + 2] == '{')
		{
			const char *close = strchr(re + i + 3, '}');

			if (close != NULL && (size_t) (close - re) <= i + 10)
			{
				size_t		plen = (size_t) (close - re) - i + 1;
				size_t		k;

				for (k = 0; k < N_UCAT; k++)
					if (strlen(ucat_map[k].name) == plen &&
						memcmp(ucat_map[k].name, re + i, plen) == 0)
						break;
				if (k < N_UCAT)
				{
					if ((!inside && !str_append(&out, &n, &cap, "[", 1)) ||
						!str_append(&out, &n, &cap, ucat_map[k].collapsed,
									strlen(ucat_map[k].collapsed)) ||
						(!inside && !str_append(&out, &n, &cap, "]", 1)))
						goto oom;
					i += plen - 1;
					continue;
				}
			}
		}
		if (!str_append(&out, &n, &cap, re + i, 1))
			goto oom;
	}

	/*
	 * "one letter that is not a-z" spelt as a lookahead plus a negated class
	 * is a plain class on the collapsed text; written so, PCRE2 need not
	 * stack a group per character on long words.
	 */
	str_replace_all(out, "((?=[\xD2" "A-Za-z])([^a-z]))", "[\xD2" "A-Z]");
	str_replace_all(out, "((?=[\xD2" "A-Za-z])([^A-Z]))", "[\xD2" "a-z]");
	str_replace_all(out, "((?=[\xD2" "A-Za-z\xD4])([^a-z]))", "[\xD2\xD4" "A-Z]");
	str_replace_all(out, "((?=[\xD2" "A-Za-z\xD4])([^A-Z]))", "[\xD2\xD4" "a-z]");
	return out;

oom:
	free(out);
	return NULL;
}

/* Compile one expression; collapsed ones in byte mode, the others in UTF mode. */
static lg_status
compile_regex(lg_regex *rx, const char *re, lg_error *err)
{
	char	   *pattern = NULL;
	uint32_t	options = PCRE2_DOLLAR_ENDONLY;
	int			errcode;
	PCRE2_SIZE	erroff;

	rx->collapsed = uses_categories(re);
	if (rx->collapsed)
	{
		pattern = collapse_regex(re);
		if (pattern == NULL)
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory compiling a pre-tokenizer");
	}
	else
		options |= PCRE2_UTF;

	rx->code = pcre2_compile((PCRE2_SPTR) (pattern ? pattern : re), PCRE2_ZERO_TERMINATED,
							 options, &errcode, &erroff, NULL);
	free(pattern);
	if (rx->code == NULL)
	{
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(errcode, msg, sizeof(msg));
		return lg_error_set(err, LG_ERR_INTERNAL,
							"pre-tokenizer expression does not compile at offset %zu: %s",
							(size_t) erroff, (const char *) msg);
	}
	/* JIT is an optimisation only; the interpreter is used if it fails */
	(void) pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE);
	return LG_OK;
}

/* Compile all expressions of a definition. */
lg_pretok *
lg_pretok_new(const lg_pretok_def *def, lg_error *err)
{
	lg_pretok  *p = calloc(1, sizeof(lg_pretok));

	if (p == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory creating a pre-tokenizer");
		return NULL;
	}
	p->def = def;
	for (int i = 0; i < MAX_RX && rx_sets[def->set][i].kind != RX_END; i++)
	{
		const rx_def *rd = &rx_sets[def->set][i];

		p->rx[i].kind = rd->kind;
		p->n_rx = i + 1;
		if (rd->kind != RX_REGEX)
			continue;
		if (compile_regex(&p->rx[i], rd->re, err) != LG_OK)
		{
			lg_pretok_free(p);
			return NULL;
		}
		if (p->rx[i].collapsed)
			p->need_collapsed = true;
		else
			p->need_wide = true;
	}
	return p;
}

/* Free the compiled expressions. */
void
lg_pretok_free(lg_pretok *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->n_rx; i++)
		if (p->rx[i].code != NULL)
			pcre2_code_free(p->rx[i].code);
	free(p);
}

/* The definition a pre-tokenizer was built from. */
const lg_pretok_def *
lg_pretok_get_def(const lg_pretok *p)
{
	return p->def;
}

/* ---- hand-written scanners (ports of llama.cpp's custom splitters) ---- */

#define OUT_OF_RANGE 0xFFFFFFFFu

/* State shared by the scanners while they walk one piece [ini, end). */
typedef struct scan
{
	const uint32_t *cpts;
	size_t		ini;
	size_t		end;
	size_t		prev_end;
	lenvec	   *out;
	bool		oom;
} scan;

/* Code point at pos, or OUT_OF_RANGE outside the piece. */
static inline uint32_t
sc_cpt(const scan *s, size_t pos)
{
	return (pos >= s->ini && pos < s->end) ? s->cpts[pos] : OUT_OF_RANGE;
}

/* Flags at pos, 0 outside the piece (so every class test fails there). */
static inline uint16_t
sc_flags(const scan *s, size_t pos)
{
	return (pos >= s->ini && pos < s->end) ? lg_unicode_flags(s->cpts[pos]) : 0;
}

/* Close the current word at end; returns its length. */
static size_t
sc_add(scan *s, size_t end)
{
	size_t		len = end - s->prev_end;

	if (len > 0 && !lenvec_push(s->out, len))
		s->oom = true;
	s->prev_end = end;
	return len;
}

#define F_WS	LG_UFLAG_WHITESPACE
#define F_L		LG_UFLAG_LETTER
#define F_N		LG_UFLAG_NUMBER

/* 's|'t|'re|'ve|'m|'ll|'d (optionally case-insensitive); length matched or 0. */
static size_t
sc_contraction(const scan *s, size_t pos, bool fold)
{
	uint32_t	c1,
				c2;

	if (sc_cpt(s, pos) != '\'' || pos + 1 >= s->end)
		return 0;
	c1 = sc_cpt(s, pos + 1);
	if (fold)
		c1 = lg_unicode_tolower(c1);
	if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
		return 2;
	if (pos + 2 >= s->end)
		return 0;
	c2 = sc_cpt(s, pos + 2);
	if (fold)
		c2 = lg_unicode_tolower(c2);
	if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
		return 3;
	return 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void
scan_gpt2(scan *s)
{
	size_t		pos = s->ini;

	while (pos < s->end)
	{
		uint32_t	cpt = sc_cpt(s, pos);
		uint16_t	flags = sc_flags(s, pos);
		uint16_t	flags2;
		size_t		nws;
		size_t		n;

		if ((n = sc_contraction(s, pos, false)) > 0)
		{
			pos += sc_add(s, pos + n);
			continue;
		}
		flags2 = (cpt == ' ') ? sc_flags(s, pos + 1) : flags;
		if (flags2 & F_L)
		{
			pos += (cpt == ' ');
			while (flags2 & F_L)
				flags2 = sc_flags(s, ++pos);
			sc_add(s, pos);
			continue;
		}
		if (flags2 & F_N)
		{
			pos += (cpt == ' ');
			while (flags2 & F_N)
				flags2 = sc_flags(s, ++pos);
			sc_add(s, pos);
			continue;
		}
		if (!(flags2 & (F_WS | F_L | F_N)) && flags2 != 0)
		{
			pos += (cpt == ' ');
			while (!(flags2 & (F_WS | F_L | F_N)) && flags2 != 0)
				flags2 = sc_flags(s, ++pos);
			sc_add(s, pos);
			continue;
		}
		nws = 0;
		while (sc_flags(s, pos + nws) & F_WS)
			nws++;
		if (nws > 1 && sc_cpt(s, pos + nws) != OUT_OF_RANGE)
		{
			pos += nws - 1;
			sc_add(s, pos);
			continue;
		}
		if (nws > 0)
		{
			pos += nws;
			sc_add(s, pos);
			continue;
		}
		sc_add(s, ++pos);
	}
}

/* The tail both Llama 3 and Kimi-K2 share: punctuation runs and whitespace. */
static bool
scan_llama3_tail(scan *s, size_t *ppos, uint32_t cpt, uint16_t flags, bool entry_on_flags2)
{
	size_t		pos = *ppos;
	uint16_t	flags2 = (cpt == ' ') ? sc_flags(s, pos + 1) : flags;
	size_t		nws = 0;
	size_t		last_rn = 0;

	/* <space>?[^\s\p{L}\p{N}]+[\r\n]* */
	if (!(flags2 & (F_WS | F_L | F_N)) && (entry_on_flags2 ? flags2 : flags) != 0)
	{
		uint32_t	c2;

		pos += (cpt == ' ');
		while (!(flags2 & (F_WS | F_L | F_N)) && flags2 != 0)
			flags2 = sc_flags(s, ++pos);
		c2 = sc_cpt(s, pos);
		while (c2 == '\r' || c2 == '\n')
			c2 = sc_cpt(s, ++pos);
		sc_add(s, pos);
		*ppos = pos;
		return true;
	}

	while (sc_flags(s, pos + nws) & F_WS)
	{
		uint32_t	c2 = sc_cpt(s, pos + nws);

		if (c2 == '\r' || c2 == '\n')
			last_rn = pos + nws + 1;
		nws++;
	}
	/* \s*[\r\n]+ */
	if (last_rn > 0)
	{
		pos = last_rn;
		sc_add(s, pos);
	}
	/* \s+(?!\S) */
	else if (nws > 1 && sc_cpt(s, pos + nws) != OUT_OF_RANGE)
	{
		pos += nws - 1;
		sc_add(s, pos);
	}
	/* \s+ */
	else if (nws > 0)
	{
		pos += nws;
		sc_add(s, pos);
	}
	else
		sc_add(s, ++pos);
	*ppos = pos;
	return true;
}

/* \p{N}{1,3}, repeated: digits in groups of three. */
static void
scan_digits3(scan *s, size_t *ppos)
{
	size_t		pos = *ppos;
	size_t		ini = pos;

	while (sc_flags(s, pos) & F_N)
	{
		if (++pos - ini >= 3)
		{
			sc_add(s, pos);
			ini = pos;
		}
	}
	sc_add(s, pos);
	*ppos = pos;
}

/*
 * Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static void
scan_llama3(scan *s)
{
	size_t		pos = s->ini;

	while (pos < s->end)
	{
		uint32_t	cpt = sc_cpt(s, pos);
		uint16_t	flags = sc_flags(s, pos);
		size_t		n;

		if ((n = sc_contraction(s, pos, true)) > 0)
		{
			pos += sc_add(s, pos + n);
			continue;
		}
		if (!(cpt == '\r' || cpt == '\n' || (flags & F_N)))
		{
			if ((flags & F_L) || (sc_flags(s, pos + 1) & F_L))
			{
				pos++;
				while (sc_flags(s, pos) & F_L)
					pos++;
				sc_add(s, pos);
				continue;
			}
		}
		if (flags & F_N)
		{
			scan_digits3(s, &pos);
			continue;
		}
		/* llama.cpp tests the current flags, not flags2, on entry here */
		scan_llama3_tail(s, &pos, cpt, flags, false);
	}
}

/* A letter that is not Han, as Kimi-K2's expressions want. */
static inline bool
sc_letter_not_han(const scan *s, size_t pos)
{
	return (sc_flags(s, pos) & F_L) && !lg_unicode_is_han(sc_cpt(s, pos));
}

/* Kimi-K2: Han runs, cased words with contractions, then Llama 3's tail. */
static void
scan_kimi_k2(scan *s)
{
	size_t		pos = s->ini;

	while (pos < s->end)
	{
		uint32_t	cpt = sc_cpt(s, pos);
		uint16_t	flags = sc_flags(s, pos);
		bool		lead_ok = !(cpt == '\r' || cpt == '\n' || (flags & (F_L | F_N)));

		if (lg_unicode_is_han(cpt))
		{
			while (lg_unicode_is_han(sc_cpt(s, pos)))
				pos++;
			sc_add(s, pos);
			continue;
		}
		if (((flags & F_L) && !lg_unicode_is_han(cpt)) ||
			(lead_ok && sc_letter_not_han(s, pos + 1)))
		{
			bool		has_lead = false;
			bool		has_letters = false;

			if (lead_ok)
			{
				has_lead = true;
				pos++;
			}
			while (sc_letter_not_han(s, pos))
			{
				has_letters = true;
				pos++;
			}
			if (has_letters || (!has_lead && sc_letter_not_han(s, pos)))
			{
				uint32_t	c1,
							c2;

				if (!has_letters)
					pos++;
				while (sc_letter_not_han(s, pos))
					pos++;
				if (sc_cpt(s, pos) == '\'' && pos + 1 < s->end)
				{
					c1 = lg_unicode_tolower(sc_cpt(s, pos + 1));
					if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
						pos += 2;
					else if (pos + 2 < s->end)
					{
						c2 = lg_unicode_tolower(sc_cpt(s, pos + 2));
						if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
							(c1 == 'l' && c2 == 'l'))
							pos += 3;
					}
				}
				sc_add(s, pos);
				continue;
			}
			else if (has_lead)
				pos--;
		}
		if (flags & F_N)
		{
			scan_digits3(s, &pos);
			continue;
		}
		scan_llama3_tail(s, &pos, cpt, flags, true);
	}
}

/* AFMoE: digit runs split so that groups of three end the run. */
static void
scan_afmoe_digits(scan *s)
{
	size_t		pos = s->ini;

	while (pos < s->end)
	{
		if (sc_flags(s, pos) & F_N)
		{
			size_t		start = pos;
			size_t		count = 0;
			size_t		cur;
			size_t		rem;

			while (pos < s->end && (sc_flags(s, pos) & F_N))
			{
				count++;
				pos++;
			}
			rem = count % 3;
			cur = start;
			if (rem > 0)
			{
				sc_add(s, cur + rem);
				cur += rem;
			}
			while (cur < start + count)
			{
				sc_add(s, cur + 3);
				cur += 3;
			}
			continue;
		}
		pos++;
	}
	if (s->prev_end < s->end)
		sc_add(s, s->end);
}

/* Run a hand-written scanner over every piece of cur. */
static bool
split_custom(rx_kind kind, const uint32_t *cpts, const lenvec *cur, lenvec *next)
{
	size_t		start = 0;

	for (size_t i = 0; i < cur->n; i++)
	{
		scan		s = {cpts, start, start + cur->v[i], start, next, false};

		switch (kind)
		{
			case RX_GPT2:
				scan_gpt2(&s);
				break;
			case RX_LLAMA3:
				scan_llama3(&s);
				break;
			case RX_KIMI_K2:
				scan_kimi_k2(&s);
				break;
			default:
				scan_afmoe_digits(&s);
				break;
		}
		if (s.oom)
			return false;
		start += cur->v[i];
	}
	return true;
}

/* Texts the PCRE2 expressions run on, built once per split. */
typedef struct subject
{
	char	   *collapsed;		/* one byte per code point */
	char	   *wide;			/* UTF-8 of the code points */
	size_t	   *wide_off;		/* byte offset of each code point, n + 1 */
	size_t		n;
} subject;

/* Class byte of a code point in the collapsed text. */
static char
collapse_cpt(uint32_t cpt)
{
	uint16_t	f;

	if (cpt < 128)
		return (char) cpt;
	f = lg_unicode_flags(cpt);
	if (f & LG_UFLAG_WHITESPACE)
		return 0x0B;
	switch (f & LG_UFLAG_CATEGORIES)
	{
		case LG_UFLAG_NUMBER:
			return (char) 0xD1;
		case LG_UFLAG_LETTER:
			return (char) 0xD2;
		case LG_UFLAG_PUNCTUATION:
			return (char) 0xD3;
		case LG_UFLAG_MARK:
			return (char) 0xD4;
		case LG_UFLAG_SYMBOL:
			return (char) 0xD5;
		default:
			return (char) 0xD0;
	}
}

/* Build the texts the expressions need; false when out of memory. */
static bool
subject_build(subject *sj, const lg_pretok *p, const uint32_t *cpts, size_t n)
{
	sj->n = n;
	if (p->need_collapsed)
	{
		sj->collapsed = malloc(n + 1);
		if (sj->collapsed == NULL)
			return false;
		for (size_t i = 0; i < n; i++)
			sj->collapsed[i] = collapse_cpt(cpts[i]);
	}
	if (p->need_wide)
	{
		size_t		off = 0;

		if (n > SIZE_MAX / 4 - 1)
			return false;
		sj->wide = malloc(n * 4 + 1);
		sj->wide_off = malloc((n + 1) * sizeof(size_t));
		if (sj->wide == NULL || sj->wide_off == NULL)
			return false;
		for (size_t i = 0; i < n; i++)
		{
			uint32_t	c = cpts[i];

			/* std::wregex's \s knows ASCII only; llama.cpp maps the rest to \v */
			if (c > 0x7F && (lg_unicode_flags(c) & LG_UFLAG_WHITESPACE))
				c = 0x0B;
			/* surrogates are not UTF-8; no expression names them, so any stand-in does */
			else if (c >= 0xD800 && c <= 0xDFFF)
				c = LG_UNICODE_REPLACEMENT;
			sj->wide_off[i] = off;
			off += lg_utf8_encode(c, sj->wide + off);
		}
		sj->wide_off[n] = off;
	}
	return true;
}

/* Release the texts. */
static void
subject_free(subject *sj)
{
	free(sj->collapsed);
	free(sj->wide);
	free(sj->wide_off);
}

/* Code point index of a byte offset in the wide text (offsets fall on starts). */
static size_t
wide_cpt_index(const subject *sj, size_t lo, size_t hi, size_t byte)
{
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (sj->wide_off[mid] < byte)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Split every piece of cur with one PCRE2 expression, std::regex_iterator
 * style: the text between matches and each match become pieces.
 */
static lg_status
split_pcre(const lg_regex *rx, const subject *sj, const lenvec *cur, lenvec *next,
		   lg_error *err)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(rx->code, NULL);
	size_t		start = 0;
	lg_status	st = LG_OK;

	if (md == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory splitting text");

	for (size_t i = 0; i < cur->n && st == LG_OK; i++)
	{
		size_t		count = cur->v[i];
		const char *base;
		size_t		blen;
		size_t		pos = 0;		/* byte offset in the piece */
		size_t		last = 0;		/* code points consumed so far */
		uint32_t	opts = 0;

		if (rx->collapsed)
		{
			base = sj->collapsed + start;
			blen = count;
		}
		else
		{
			base = sj->wide + sj->wide_off[start];
			blen = sj->wide_off[start + count] - sj->wide_off[start];
		}

		while (pos <= blen)
		{
			int			rc = pcre2_match(rx->code, (PCRE2_SPTR) base, blen, pos,
										 opts | PCRE2_NO_UTF_CHECK, md, NULL);
			PCRE2_SIZE *ov;
			size_t		ms,
						me;

			if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
				rc = pcre2_match(rx->code, (PCRE2_SPTR) base, blen, pos,
								 opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
			if (rc == PCRE2_ERROR_NOMATCH)
			{
				if (opts == 0 || pos >= blen)
					break;
				/* no non-empty match where the empty one was: step one character */
				pos += rx->collapsed ? 1 : lg_utf8_len((uint8_t) base[pos]);
				opts = 0;
				continue;
			}
			if (rc < 0)
			{
				PCRE2_UCHAR msg[256];

				pcre2_get_error_message(rc, msg, sizeof(msg));
				st = lg_error_set(err, LG_ERR_RANGE, "pre-tokenizer cannot split the text: %s",
								  (const char *) msg);
				break;
			}
			ov = pcre2_get_ovector_pointer(md);
			ms = ov[0];
			me = ov[1];
			if (ms > me)		/* \K in a lookahead; none of ours has it */
				me = ms;
			if (!rx->collapsed)
			{
				ms = wide_cpt_index(sj, start, start + count + 1, sj->wide_off[start] + ms) - start;
				me = wide_cpt_index(sj, start, start + count + 1, sj->wide_off[start] + me) - start;
			}
			if (ms > last && !lenvec_push(next, ms - last))
				goto oom;
			if (me > ms && !lenvec_push(next, me - ms))
				goto oom;
			last = me;
			pos = ov[1] > ov[0] ? ov[1] : ov[0];
			opts = (ov[1] == ov[0]) ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
		}
		if (st == LG_OK && last < count && !lenvec_push(next, count - last))
			goto oom;
		start += count;
	}
	pcre2_match_data_free(md);
	return st;

oom:
	pcre2_match_data_free(md);
	return lg_error_set(err, LG_ERR_NOMEM, "out of memory splitting text");
}

/* Apply every expression in turn, each refining the previous pieces. */
lg_status
lg_pretok_split(const lg_pretok *p, const uint32_t *cpts, size_t n,
				lg_pretok_words *words, lg_error *err)
{
	lenvec		cur = {NULL, 0, 0};
	lenvec		next = {NULL, 0, 0};
	subject		sj = {NULL, NULL, NULL, 0};
	lg_status	st = LG_OK;

	words->n = 0;
	if (n == 0)
		return LG_OK;
	if (!lenvec_push(&cur, n) || !subject_build(&sj, p, cpts, n))
		goto oom;

	for (int r = 0; r < p->n_rx; r++)
	{
		lenvec		tmp;

		next.n = 0;
		if (p->rx[r].kind == RX_REGEX)
		{
			st = split_pcre(&p->rx[r], &sj, &cur, &next, err);
			if (st != LG_OK)
				goto done;
		}
		else if (!split_custom(p->rx[r].kind, cpts, &cur, &next))
			goto oom;
		tmp = cur;
		cur = next;
		next = tmp;
	}

	/* hand the piece lengths over to the caller's array */
	free(words->len);
	words->len = cur.v;
	words->n = cur.n;
	words->cap = cur.cap;
	cur.v = NULL;
	goto done;

oom:
	st = lg_error_set(err, LG_ERR_NOMEM, "out of memory splitting text");
done:
	free(cur.v);
	free(next.v);
	subject_free(&sj);
	return st;
}

/* Free a word list's array. */
void
lg_pretok_words_free(lg_pretok_words *words)
{
	free(words->len);
	words->len = NULL;
	words->n = words->cap = 0;
}
