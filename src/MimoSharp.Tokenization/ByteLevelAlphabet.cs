namespace MimoSharp.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet: each byte is shown as one printable character (printable Latin-1
/// bytes as themselves, the rest shifted to U+0100 and up), so BPE works on text and every byte
/// string has a spelling. tokenizer.json vocabularies are written in it.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] s_byteToChar = Build();
    private static readonly Dictionary<char, byte> s_charToByte = Enumerable.Range(0, 256).ToDictionary(b => s_byteToChar[b], b => (byte)b);

    private static char[] Build()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    public static char ToChar(byte b) => s_byteToChar[b];

    /// <summary>The bytes a vocabulary entry spells; false if it holds a character outside the alphabet.</summary>
    public static bool TryToBytes(string token, out byte[] bytes)
    {
        bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!s_charToByte.TryGetValue(token[i], out bytes[i]))
            {
                return false;
            }
        }
        return true;
    }
}
