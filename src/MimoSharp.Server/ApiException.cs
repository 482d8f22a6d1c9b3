using System.Text.Json.Nodes;

namespace MimoSharp.Server;

/// <summary>Which API's error shape and vocabulary an answer uses.</summary>
public enum ApiFlavor
{
    OpenAI,
    Anthropic,
}

/// <summary>
/// A request the server refuses, with the HTTP status and the field at fault (<c>messages[0].content</c>);
/// rendered in the shape of the API the client speaks.
/// </summary>
public sealed class ApiException(int status, string message, string? param = null) : Exception(message)
{
    public int Status => status;

    /// <summary>The request field at fault, if one is.</summary>
    public string? Param => param;

    public static ApiException BadRequest(string param, string message) => new(400, $"{param}: {message}", param);

    /// <summary>{"error": {...}} for OpenAI, {"type": "error", "error": {...}} for Anthropic.</summary>
    public JsonObject ToJson(ApiFlavor flavor) => ErrorBody(flavor, status, Message, param);

    public static JsonObject ErrorBody(ApiFlavor flavor, int status, string message, string? param = null)
    {
        if (flavor == ApiFlavor.Anthropic)
        {
            string type = status switch
            {
                400 or 422 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                503 or 529 => "overloaded_error",
                _ => "api_error",
            };
            return new JsonObject { ["type"] = "error", ["error"] = new JsonObject { ["type"] = type, ["message"] = message } };
        }
        string openAiType = status switch
        {
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        string? code = status switch
        {
            401 => "invalid_api_key",
            404 => "model_not_found",
            413 => "request_too_large",
            429 => "rate_limit_exceeded",
            _ => null,
        };
        return new JsonObject
        {
            ["error"] = new JsonObject { ["message"] = message, ["type"] = openAiType, ["param"] = param, ["code"] = code },
        };
    }
}
